/* What tests/check-platform must refuse (tests/meson.build): a Linux-only
 * header in the kernel layer, outside lib/platform/.  Never compiled. */
#include <linux/fs.h>
