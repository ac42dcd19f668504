/*
 * The certificate and private key cloudfsd serves HTTPS with (serve
 * --tls-cert, --tls-key).  Both are read once, at start, and checked with
 * GnuTLS, the library libmicrohttpd serves TLS with: a file that would not
 * do is refused naming it, before the server listens.
 */
#ifndef SERVER_TLS_H
#define SERVER_TLS_H

#include "cloudfs/error.h"

struct tls_pair {
	char *cert; /* PEM: the certificate, then its chain; NUL-terminated */
	char *key;  /* PEM, NUL-terminated; wiped when released */
};

/*
 * Reads cert_path and key_path into *t and checks that the first holds a
 * certificate (and its chain), the second an unencrypted private key, and
 * that the key is the certificate's.  On failure err's message names the
 * file at fault and *t holds nothing to release.
 */
enum cfs_err tls_pair_load(struct tls_pair *t, const char *cert_path,
			   const char *key_path, struct cfs_error *err);

/* Frees what tls_pair_load() read (nothing after a failure or twice). */
void tls_pair_release(struct tls_pair *t);

#endif
