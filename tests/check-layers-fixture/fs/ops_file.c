/* May: the kernel layer. */
#include <fuse_lowlevel.h>
