/* May: the remote. */
#include <curl/curl.h>
