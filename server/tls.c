/* The certificate and key cloudfsd serves HTTPS with (server/tls.h). */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <openssl/crypto.h> /* OPENSSL_cleanse */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/tls.h"

/* A certificate chain or a key takes a few KiB; a larger file is not one.
 * Read up to this, so that a pipe (--tls-key <(...)) does as well as a
 * file. */
#define PEM_MAX (64u * 1024)

/* All that file path (the what) holds, NUL-terminated, in *out. */
static enum cfs_err read_pem(const char *what, const char *path, char **out,
			     struct cfs_error *err)
{
	char *text = malloc(PEM_MAX + 1);
	size_t len = 0;
	ssize_t n = 0;
	int fd, e;

	if (!text)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	while (fd >= 0 && len <= PEM_MAX) {
		n = read(fd, text + len, PEM_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	e = errno;
	if (fd >= 0)
		close(fd);
	if (fd < 0 || n < 0) {
		free(text);
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"cannot read %s file '%s': %s", what, path,
				strerror(e));
	}
	if (len > PEM_MAX) {
		free(text);
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"%s file '%s' is over %u KiB: not a PEM %s",
				what, path, PEM_MAX / 1024, what);
	}
	text[len] = '\0';
	*out = text;
	return CFS_OK;
}

static gnutls_datum_t datum(const char *pem)
{
	return (gnutls_datum_t){ .data = (unsigned char *)pem,
				 .size = (unsigned)strlen(pem) };
}

static enum cfs_err check_cert(const char *path, const char *pem,
			       struct cfs_error *err)
{
	gnutls_datum_t d = datum(pem);
	gnutls_x509_crt_t *crts = NULL;
	unsigned n = 0;
	int e;

	e = gnutls_x509_crt_list_import2(&crts, &n, &d, GNUTLS_X509_FMT_PEM, 0);
	for (unsigned i = 0; e >= 0 && i < n; i++)
		gnutls_x509_crt_deinit(crts[i]);
	gnutls_free(crts);
	if (e == 0 && n == 0)
		e = GNUTLS_E_NO_CERTIFICATE_FOUND;
	if (e < 0)
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"certificate file '%s' holds no PEM "
				"certificate: %s",
				path, gnutls_strerror(e));
	return CFS_OK;
}

static enum cfs_err check_key(const char *path, const char *pem,
			      struct cfs_error *err)
{
	gnutls_datum_t d = datum(pem);
	gnutls_x509_privkey_t key;
	int e;

	if (gnutls_x509_privkey_init(&key) < 0)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	/* No password, as libmicrohttpd is given none: an encrypted key
	 * fails here. */
	e = gnutls_x509_privkey_import2(key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
	gnutls_x509_privkey_deinit(key);
	if (e < 0)
		return cfs_fail(
			err, CFS_ERR_BAD_FIELD,
			"key file '%s' holds no unencrypted PEM private "
			"key: %s",
			path, gnutls_strerror(e));
	return CFS_OK;
}

/* What libmicrohttpd will do with the pair, which checks that the key is
 * the certificate's. */
static enum cfs_err check_pair(const char *cert_path, const char *key_path,
			       const struct tls_pair *t, struct cfs_error *err)
{
	gnutls_datum_t cert = datum(t->cert), key = datum(t->key);
	gnutls_certificate_credentials_t cred;
	int e;

	if (gnutls_certificate_allocate_credentials(&cred) < 0)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	e = gnutls_certificate_set_x509_key_mem2(cred, &cert, &key,
						 GNUTLS_X509_FMT_PEM, NULL, 0);
	gnutls_certificate_free_credentials(cred);
	if (e == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"key file '%s' is not the key of the "
				"certificate in '%s'",
				key_path, cert_path);
	if (e < 0)
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"cannot use certificate file '%s' with key "
				"file '%s': %s",
				cert_path, key_path, gnutls_strerror(e));
	return CFS_OK;
}

enum cfs_err tls_pair_load(struct tls_pair *t, const char *cert_path,
			   const char *key_path, struct cfs_error *err)
{
	enum cfs_err rc;

	memset(t, 0, sizeof(*t));
	rc = read_pem("certificate", cert_path, &t->cert, err);
	if (!rc)
		rc = check_cert(cert_path, t->cert, err);
	if (!rc)
		rc = read_pem("key", key_path, &t->key, err);
	if (!rc)
		rc = check_key(key_path, t->key, err);
	if (!rc)
		rc = check_pair(cert_path, key_path, t, err);
	if (rc)
		tls_pair_release(t);
	return rc;
}

void tls_pair_release(struct tls_pair *t)
{
	if (t->key)
		OPENSSL_cleanse(t->key, PEM_MAX + 1);
	free(t->key);
	free(t->cert);
	t->key = t->cert = NULL;
}
