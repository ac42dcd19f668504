/* Breaks the rule: below the kernel layer. */
#include <fuse_lowlevel.h>
