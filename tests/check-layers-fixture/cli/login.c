/* Breaks the rule: the CLI speaks HTTP itself. */
#include <curl/curl.h>
