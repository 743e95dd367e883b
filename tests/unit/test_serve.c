/* Unit tests for `bmap-station serve`'s pure parts: the listen address
 * (which decides whether TLS and a password are required) and the
 * configuration's serve group. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "config.h"
#include "serve-internal.h"

static void listen_ok(const char *s, int family, const char *addr, unsigned port, bool loopback)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	bool lo = !loopback;
	char buf[INET6_ADDRSTRLEN];

	assert_int_equal(serve_parse_listen(s, &ss, &len, &lo), 0);
	assert_int_equal(ss.ss_family, family);
	assert_int_equal(lo, loopback);
	if (family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;

		assert_int_equal(len, sizeof(*in));
		assert_int_equal(ntohs(in->sin_port), port);
		assert_non_null(inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf)));
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;

		assert_int_equal(len, sizeof(*in6));
		assert_int_equal(ntohs(in6->sin6_port), port);
		assert_non_null(inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf)));
	}
	assert_string_equal(buf, addr);
}

static void test_listen_addresses(void **state)
{
	(void)state;
	listen_ok("127.0.0.1:8080", AF_INET, "127.0.0.1", 8080, true);
	listen_ok("127.1.2.3:0", AF_INET, "127.1.2.3", 0, true);
	listen_ok("localhost:80", AF_INET, "127.0.0.1", 80, true);
	listen_ok("[::1]:8443", AF_INET6, "::1", 8443, true);
	/* Not loopback: these need TLS and a password. */
	listen_ok("0.0.0.0:8080", AF_INET, "0.0.0.0", 8080, false);
	listen_ok("192.168.1.10:65535", AF_INET, "192.168.1.10", 65535, false);
	listen_ok("128.0.0.1:1", AF_INET, "128.0.0.1", 1, false);
	listen_ok("[::]:8080", AF_INET6, "::", 8080, false);
	/* An IPv4-mapped loopback is still IPv6's any-but-::1: not loopback. */
	listen_ok("[::ffff:127.0.0.1]:8080", AF_INET6, "::ffff:127.0.0.1", 8080, false);
}

static void test_listen_refused(void **state)
{
	static const char *const bad[] = {
		"", "8080", "127.0.0.1", "127.0.0.1:", ":8080", "127.0.0.1:65536",
		"127.0.0.1:-1", "127.0.0.1:+80", "127.0.0.1:80x", "127.0.0.1:99999999999999999999",
		"[::1]", "[::1]8080", "::1:8080", "[127.0.0.1]:80", "example.com:80",
		"127.0.0.1.5:80", "[::1:80", NULL,
	};
	struct sockaddr_storage ss;
	socklen_t len;
	bool lo;

	(void)state;
	for (size_t i = 0; bad[i]; i++) {
		if (serve_parse_listen(bad[i], &ss, &len, &lo) != -EINVAL)
			fail_msg("'%s' was taken as a listen address", bad[i]);
	}
	assert_int_equal(serve_parse_listen(NULL, &ss, &len, &lo), -EINVAL);
}

static char *write_conf(const char *dir, const char *serve)
{
	char *path = tu_path(dir, "station.conf"), *text = NULL;
	int n = asprintf(&text,
			 "station = { database = \"j.db\"; };\n"
			 "profiles = ( { name = \"p\"; image = \"/i.img\"; } );\n%s\n",
			 serve);

	assert_true(n > 0);
	tu_write_file(path, text, (size_t)n);
	free(text);
	return path;
}

static void test_config_serve_group(void **state)
{
	struct station_config *cfg = NULL;
	char *dir = tu_mkdtemp(), *conf, *err = NULL, *want;

	(void)state;
	conf = write_conf(dir, "serve = { listen = \"0.0.0.0:8443\"; tls_cert = \"c.pem\";"
			       " tls_key = \"/etc/k.pem\"; password_file = \"pw\"; };");
	assert_int_equal(config_load(conf, &cfg, &err), 0);
	assert_string_equal(cfg->serve_listen, "0.0.0.0:8443");
	/* Relative paths are the configuration folder's, as the others. */
	want = tu_path(dir, "c.pem");
	assert_string_equal(cfg->serve_tls_cert, want);
	free(want);
	assert_string_equal(cfg->serve_tls_key, "/etc/k.pem");
	want = tu_path(dir, "pw");
	assert_string_equal(cfg->serve_password_file, want);
	free(want);
	config_free(cfg);
	free(conf);

	/* Without the group: nothing set (serve's defaults apply). */
	conf = write_conf(dir, "");
	assert_int_equal(config_load(conf, &cfg, &err), 0);
	assert_null(cfg->serve_listen);
	assert_null(cfg->serve_tls_cert);
	assert_null(cfg->serve_tls_key);
	assert_null(cfg->serve_password_file);
	config_free(cfg);
	free(conf);

	/* A typo is an error naming the setting, not a dashboard open to all. */
	conf = write_conf(dir, "serve = { listen = \"127.0.0.1:1\"; password_flie = \"pw\"; };");
	assert_true(config_load(conf, &cfg, &err) < 0);
	assert_non_null(err);
	assert_non_null(strstr(err, "password_flie"));
	free(err);
	err = NULL;
	free(conf);
	conf = write_conf(dir, "serve = { listen = 8080; };");
	assert_true(config_load(conf, &cfg, &err) < 0);
	assert_non_null(strstr(err, "listen"));
	free(err);
	free(conf);
	tu_rmtree(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listen_addresses),
		cmocka_unit_test(test_listen_refused),
		cmocka_unit_test(test_config_serve_group),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
