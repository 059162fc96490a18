/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "bridge.h"
#include "config.h"
#include "error.h"
#include "fs-util.h"
#include "log.h"
#include "macro.h"
#include "toml.h"

static int parse(const char *text, BangerConfig *c) {
        error_clear();
        return config_parse_string(text, strlen(text), "config.toml", c);
}

/* The parse fails with r and the message the user sees contains want. */
static void expect_error_r(const char *text, int r, const char *want, int line) {
        BangerConfig c;
        int got = parse(text, &c);
        if (got != r || !error_last_message() || !strstr(error_last_message(), want)) {
                fprintf(stderr, "test line %d: got %d '%s', want %d containing '%s'\n", line, got,
                        error_last_message() ?: "(none)", r, want);
                if (got >= 0)
                        config_done(&c);
                fail();
        }
}
#define expect_error(text, r, want) expect_error_r((text), (r), (want), __LINE__)

/* The config accepts exactly the bridge names the privileged helper
 * accepts (net/bridge.c): one it refused would keep the helper from starting. */
static void test_bridge_name_matches_helper(void **state) {
        const char *names[] = { "br-fc",  "br-fc-a", "br-fc-123456789", "br-fc-1234567890", "br-fc-a-b", "br-fc--",
                                "br-fc-", "br-fc-A", "br-fc_x",         "br-fcx",           "br-fc-x.y", "eth0" };
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                char text[128];
                snprintf(text, sizeof(text), "bridge_name = \"%s\"\n", names[i]);
                BangerConfig c;
                int r = parse(text, &c);
                if (r >= 0)
                        config_done(&c);
                if ((r >= 0) != bridge_name_is_valid(names[i]))
                        fail_msg("bridge_name '%s': config says %d, the helper says %d", names[i], r,
                                 bridge_name_is_valid(names[i]));
        }
}

static void test_defaults(void **state) {
        BangerConfig c;
        assert_int_equal(parse("", &c), 0);
        assert_int_equal(c.log_level, -1);
        assert_int_equal(c.default_vmm, CONFIG_VMM_AUTO);
        assert_string_equal(c.firecracker_bin, "firecracker");
        assert_false(c.jailer_enabled);
        assert_string_equal(c.jailer_bin, "jailer");
        assert_string_equal(c.jailer_chroot_base, "/srv/jailer");
        assert_string_equal(c.qemu_bin, "qemu-system-x86_64");
        assert_string_equal(c.bridge_name, "br-fc");
        assert_string_equal(c.bridge_ip, "172.16.0.1");
        assert_string_equal(c.cidr, "172.16.0.0/24");
        assert_int_equal(c.cidr_prefix, 24);
        assert_int_equal(ntohl(c.cidr_addr.s_addr), 0xAC100000);
        assert_int_equal(ntohl(c.bridge_addr.s_addr), 0xAC100001);
        assert_int_equal(c.tap_pool_size, 0);
        assert_int_equal(c.max_taps, 1024);
        assert_int_equal(c.max_loop_devices, 256);
        assert_int_equal(c.dns_port, 5354);
        assert_string_equal(c.dns_listen, "127.0.0.1");
        assert_int_equal(c.stop_timeout_sec, 10);
        assert_int_equal(c.boot_timeout_sec, 120);
        assert_string_equal(c.default_image, "debian-bookworm");
        assert_string_equal(c.debootstrap_mirror, "http://deb.debian.org/debian");
        assert_string_equal(c.debootstrap_suite, "bookworm");
        assert_true(c.image_import_max == 32ULL << 30);
        assert_int_equal(c.vm_defaults.vcpu, 2);
        assert_int_equal(c.vm_defaults.memory_mib, 1024);
        assert_true(c.vm_defaults.disk_size == 8ULL << 30);
        assert_null(c.vm_defaults.image);
        assert_false(c.vm_defaults.nat);
        assert_int_equal(c.n_files, 0);
        assert_string_equal(config_vm_image(&c), "debian-bookworm");
        config_done(&c);

        /* Comments and blank lines only: still the defaults. */
        assert_int_equal(parse("# nothing\n\n   # here\r\n", &c), 0);
        assert_string_equal(c.bridge_name, "br-fc");
        config_done(&c);
}

static const char full[] = "\xEF\xBB\xBF# every key\n"
                           "log_level = \"debug\"\n"
                           "default_vmm = 'qemu'\n"
                           "firecracker_bin = \"/opt/fc/firecracker\"\n"
                           "jailer_enabled = true\n"
                           "jailer_bin = \"/opt/fc/jailer\"\n"
                           "jailer_chroot_base = \"/var/lib/jail\"\n"
                           "jailer_uid = 1_000\n"
                           "jailer_gid = 0x3e8\n"
                           "qemu_bin = \"qemu-system-x86_64\"\n"
                           "bridge_name = \"br-fc-test\"   # a comment\n"
                           "bridge_ip = \"10.9.8.254\"\n"
                           "cidr = \"10.9.8.0/24\"\n"
                           "tap_pool_size = 64\n"
                           "max_taps = 4096\n"
                           "max_loop_devices = 1\n"
                           "dns_port = 53\n"
                           "dns_listen = \"::1\"\n"
                           "stop_timeout_sec = 600\n"
                           "boot_timeout_sec = 300\n"
                           "default_image = \"my-image\"\n"
                           "debootstrap_mirror = \"https://mirror.example/debian\"\n"
                           "debootstrap_suite = \"trixie\"\n"
                           "image_import_max = \"2G\"\n"
                           "\n"
                           "[vm_defaults]\n"
                           "vcpu = 4\n"
                           "memory = \"2G\"\n"
                           "disk_size = \"20G\"\n"
                           "\"image\" = \"dev\"\n"
                           "nat = true\n"
                           "\n"
                           "[[file]]\n"
                           "host = \"/home/me/.gitconfig\"\n"
                           "guest = \"/root/.gitconfig\"\n"
                           "mode = \"0640\"\n"
                           "[[file]]\r\n"
                           "host = '/etc/resolv.conf'\r\n"
                           "guest = \"/etc/caf\\u00e9\"\r\n"
                           "mode = 0o600\r\n"
                           "[[file]]\n"
                           "host = \"/a\"\n"
                           "guest = \"/b\"\n";

static void test_full(void **state) {
        BangerConfig c;
        assert_int_equal(parse(full, &c), 0);
        assert_int_equal(c.log_level, LOG_DEBUG);
        assert_int_equal(c.default_vmm, CONFIG_VMM_QEMU);
        assert_string_equal(c.firecracker_bin, "/opt/fc/firecracker");
        assert_true(c.jailer_enabled);
        assert_string_equal(c.jailer_bin, "/opt/fc/jailer");
        assert_string_equal(c.jailer_chroot_base, "/var/lib/jail");
        assert_int_equal(c.jailer_uid, 1000);
        assert_int_equal(c.jailer_gid, 1000);
        assert_string_equal(c.bridge_name, "br-fc-test");
        assert_string_equal(c.bridge_ip, "10.9.8.254");
        assert_int_equal(c.cidr_prefix, 24);
        assert_int_equal(c.tap_pool_size, 64);
        assert_int_equal(c.max_taps, 4096);
        assert_int_equal(c.max_loop_devices, 1);
        assert_int_equal(c.dns_port, 53);
        assert_string_equal(c.dns_listen, "::1");
        assert_int_equal(c.stop_timeout_sec, 600);
        assert_int_equal(c.boot_timeout_sec, 300);
        assert_string_equal(c.default_image, "my-image");
        assert_string_equal(c.debootstrap_mirror, "https://mirror.example/debian");
        assert_string_equal(c.debootstrap_suite, "trixie");
        assert_true(c.image_import_max == 2ULL << 30);
        assert_int_equal(c.vm_defaults.vcpu, 4);
        assert_int_equal(c.vm_defaults.memory_mib, 2048);
        assert_true(c.vm_defaults.disk_size == 20ULL << 30);
        assert_string_equal(c.vm_defaults.image, "dev");
        assert_string_equal(config_vm_image(&c), "dev");
        assert_true(c.vm_defaults.nat);
        assert_int_equal(c.n_files, 3);
        assert_string_equal(c.files[0].host, "/home/me/.gitconfig");
        assert_string_equal(c.files[0].guest, "/root/.gitconfig");
        assert_true(c.files[0].mode_set);
        assert_int_equal(c.files[0].mode, 0640);
        assert_string_equal(c.files[1].host, "/etc/resolv.conf");
        assert_string_equal(c.files[1].guest, "/etc/caf\xc3\xa9");
        assert_int_equal(c.files[1].mode, 0600);
        assert_false(c.files[2].mode_set);
        config_done(&c);
}

static void test_toml_forms(void **state) {
        BangerConfig c;
        /* Dotted keys at the top level reach [vm_defaults]; integer MiB. */
        assert_int_equal(parse("vm_defaults.vcpu = 8\nvm_defaults . memory = 512\n", &c), 0);
        assert_int_equal(c.vm_defaults.vcpu, 8);
        assert_int_equal(c.vm_defaults.memory_mib, 512);
        config_done(&c);
        /* A header may define a table that an earlier header only named. */
        assert_int_equal(parse("[vm_defaults.x]\n[vm_defaults]\nvcpu=1\n", &c), -EINVAL);
        assert_non_null(strstr(error_last_message(), "config.toml:1: unknown key 'x' in [vm_defaults]"));

        _cleanup_toml_free_ TomlValue *t = NULL;
        const char *doc = "a = [ 1, -2,\n  # comment\n  'x', \"y\", true, ]\nb = -9223372036854775808\n"
                          "c = 9_223_372_036_854_775_807\nd = 0b101\ne = +0\n[t.u]\nv.w = 1\n[t]\nz = 2\n";
        assert_int_equal(toml_parse(doc, strlen(doc), "x.toml", &t), 0);
        const TomlValue *a = toml_table_get(t, "a");
        assert_non_null(a);
        assert_int_equal(a->type, TOML_ARRAY);
        assert_false(toml_array_is_table_array(a));
        assert_int_equal(a->array.n, 5);
        assert_int_equal(a->array.items[1]->integer.value, -2);
        assert_string_equal(a->array.items[3]->string, "y");
        assert_true(a->array.items[4]->boolean);
        assert_true(toml_table_get(t, "b")->integer.value == INT64_MIN);
        assert_true(toml_table_get(t, "c")->integer.value == INT64_MAX);
        assert_int_equal(toml_table_get(t, "d")->integer.value, 5);
        assert_int_equal(toml_table_get(t, "d")->integer.radix, 2);
        assert_int_equal(toml_table_get(t, "e")->integer.value, 0);
        const TomlValue *tt = toml_table_get(t, "t");
        assert_int_equal(tt->line, 10); /* the header that defined it */
        assert_int_equal(toml_table_get(toml_table_get(toml_table_get(tt, "u"), "v"), "w")->integer.value, 1);
        assert_int_equal(toml_table_get(tt, "z")->integer.value, 2);

        /* A header below an array of tables lands in its last element. */
        _cleanup_toml_free_ TomlValue *at = NULL;
        const char *doc2 = "[[s]]\nn = 1\n[[s]]\nn = 2\n[s.sub]\nk = 3\n";
        assert_int_equal(toml_parse(doc2, strlen(doc2), "x.toml", &at), 0);
        const TomlValue *s = toml_table_get(at, "s");
        assert_true(toml_array_is_table_array(s));
        assert_int_equal(s->array.n, 2);
        assert_null(toml_table_get(s->array.items[0], "sub"));
        assert_int_equal(toml_table_get(toml_table_get(s->array.items[1], "sub"), "k")->integer.value, 3);
}

static void test_unknown_keys(void **state) {
        expect_error("\n\nfoo = 1\n", -EINVAL, "config.toml:3: unknown key 'foo'");
        expect_error("[vm_defaults]\nvcpu = 2\n\n\nfoo = \"x\"\n", -EINVAL,
                     "config.toml:5: unknown key 'foo' in [vm_defaults]");
        expect_error("[vmdefaults]\n", -EINVAL, "config.toml:1: unknown table [vmdefaults]");
        expect_error("[[file]]\nhost = \"/a\"\nguest = \"/b\"\nowner = 0\n", -EINVAL,
                     "config.toml:4: unknown key 'owner' in [[file]]");
        expect_error("vm_defaults = 3\n", -EINVAL, "vm_defaults must be a table, not an integer");
        expect_error("[file]\nhost = \"/a\"\n", -EINVAL, "config.toml:1: file must be written as [[file]] tables");
}

static void test_syntax_errors(void **state) {
        expect_error("a = 1\na = 2\n", -EBADMSG, "config.toml:2:1: duplicate key 'a' (first defined on line 1)");
        expect_error("[vm_defaults]\nvcpu = 1\n[vm_defaults]\n", -EBADMSG,
                     "config.toml:3:2: 'vm_defaults' is already defined (line 1)");
        expect_error("[file]\n[[file]]\n", -EBADMSG, "'file' is already defined as a table");
        expect_error("[[file]]\n[file]\n", -EBADMSG, "'file' is already defined (line 1)");
        expect_error("a.b = 1\n[a]\n", -EBADMSG, "'a' is already defined");
        expect_error("[a.b]\n[a]\nb.c = 1\n", -EBADMSG, "cannot add keys to 'b' with a dotted key");
        expect_error("a = 1\na.b = 2\n", -EBADMSG,
                     "config.toml:2:1: cannot add keys to 'a' with a dotted key: it is defined on line 1");
        expect_error("a = 1\n[a.b]\n", -EBADMSG,
                     "config.toml:2:2: key 'a' is already an integer (line 1), not a table");
        expect_error("a = [1]\n[a.b]\n", -EBADMSG, "key 'a' is already an array (line 1), not a table");
        expect_error("x = \"abc\n", -EBADMSG, "config.toml:1:5: unterminated string");
        expect_error("x = 'abc", -EBADMSG, "config.toml:1:5: unterminated string");
        expect_error("x = \"a\\qb\"\n", -EBADMSG, "config.toml:1:7: invalid escape sequence '\\q'");
        expect_error("x = \"\\u12\"\n", -EBADMSG, "\\u escape needs 4 hex digits");
        expect_error("x = \"\\uD800\"\n", -EBADMSG, "is not a Unicode scalar value");
        expect_error("x = \"\\U00110000\"\n", -EBADMSG, "is not a Unicode scalar value");
        expect_error("x = \"\\u0000\"\n", -EBADMSG, "NUL characters in strings are not supported");
        expect_error("# ok\nx = \"caf\xc3\"\n", -EBADMSG, "config.toml:2:9: invalid UTF-8");
        expect_error("x = \"\xed\xa0\x80\"\n", -EBADMSG, "invalid UTF-8");
        expect_error("# bell \x07\n", -EBADMSG, "config.toml:1:8: control character U+0007 not allowed");
        expect_error("x = 1\ry = 2\n", -EBADMSG, "carriage return not followed by newline");
        expect_error("x = 1.5\n", -EBADMSG, "floating-point numbers are not supported");
        expect_error("x = 1e3\n", -EBADMSG, "floating-point numbers are not supported");
        expect_error("x = inf\n", -EBADMSG, "floating-point numbers are not supported");
        expect_error("x = -nan\n", -EBADMSG, "floating-point numbers are not supported");
        expect_error("x = 1979-05-27\n", -EBADMSG, "dates and times are not supported");
        expect_error("x = 07:32:00\n", -EBADMSG, "dates and times are not supported");
        expect_error("x = \"\"\"a\"\"\"\n", -EBADMSG, "multi-line strings are not supported");
        expect_error("x = '''a'''\n", -EBADMSG, "multi-line strings are not supported");
        expect_error("x = { a = 1 }\n", -EBADMSG, "inline tables are not supported");
        expect_error("x = [[1]]\n", -EBADMSG, "nested arrays are not supported");
        expect_error("x = [1, 2\n", -EBADMSG, "config.toml:1:5: unterminated array");
        expect_error("x = [1 2]\n", -EBADMSG, "expected ',' or ']'");
        expect_error("x = 9223372036854775808\n", -ERANGE, "config.toml:1:5: integer out of range");
        expect_error("x = -9223372036854775809\n", -ERANGE, "integer out of range");
        expect_error("x = 012\n", -EBADMSG, "leading zeros are not allowed");
        expect_error("x = 1__0\n", -EBADMSG, "'_' must sit between two digits");
        expect_error("x = 10_\n", -EBADMSG, "'_' must sit between two digits");
        expect_error("x = -0x10\n", -EBADMSG, "take no sign");
        expect_error("x = 0x\n", -EBADMSG, "invalid integer");
        expect_error("x = 12abc\n", -EBADMSG, "invalid integer");
        expect_error("x = yes\n", -EBADMSG, "config.toml:1:5: invalid value");
        expect_error("x = truely\n", -EBADMSG, "invalid value");
        expect_error("x =\n", -EBADMSG, "missing value");
        expect_error("x\n", -EBADMSG, "expected '=' after key");
        expect_error("x = 1 2\n", -EBADMSG, "unexpected '2' after value, expected end of line");
        expect_error("= 1\n", -EBADMSG, "unexpected '=', expected a key");
        expect_error("[a\n", -EBADMSG, "expected ']' to close the table header");
        expect_error("[[a]\n", -EBADMSG, "expected ']]' to close the table header");
        expect_error("[a] b = 1\n", -EBADMSG, "after table header");
}

static void test_limits(void **state) {
        char buf[600];
        strcpy(buf, "[a");
        for (int i = 0; i < 16; i++)
                strcat(buf, ".a");
        strcat(buf, "]\n");
        expect_error(buf, -E2BIG, "key nested deeper than 16 levels");

        memset(buf, 'k', 300);
        strcpy(buf + 300, " = 1\n");
        expect_error(buf, -E2BIG, "key longer than 256 bytes");

        /* 1,024 keys in one table and items in one array; one more is refused. */
        _cleanup_free_ char *keys = NULL, *items = NULL;
        size_t klen = 0, ilen = 0;
        FILE *kf = open_memstream(&keys, &klen), *itf = open_memstream(&items, &ilen);
        assert_non_null(kf);
        assert_non_null(itf);
        fputs("x = [", itf);
        for (unsigned i = 0; i < TOML_MAX_ENTRIES; i++) {
                fprintf(kf, "k%u = 1\n", i);
                fputs("1, ", itf);
        }
        assert_int_equal(fclose(kf), 0);
        fputs("]\n", itf);
        assert_int_equal(fclose(itf), 0);
        TomlValue *t = NULL;
        assert_int_equal(toml_parse(keys, klen, "x.toml", &t), 0);
        assert_int_equal(t->table.n, TOML_MAX_ENTRIES);
        t = toml_free(t);
        assert_int_equal(toml_parse(items, ilen, "x.toml", &t), 0);
        assert_int_equal(toml_table_get(t, "x")->array.n, TOML_MAX_ENTRIES);
        t = toml_free(t);
        _cleanup_free_ char *more_keys = NULL, *more_items = NULL;
        assert_true(asprintf(&more_keys, "%sextra = 2\n", keys) > 0);
        error_clear();
        assert_int_equal(toml_parse(more_keys, strlen(more_keys), "x.toml", &t), -E2BIG);
        assert_non_null(strstr(error_last_message(), "x.toml:1025:1: too many keys in one table (limit 1024)"));
        assert_true(asprintf(&more_items, "x = [2, %s", items + strlen("x = [")) > 0);
        error_clear();
        assert_int_equal(toml_parse(more_items, strlen(more_items), "x.toml", &t), -E2BIG);
        assert_non_null(strstr(error_last_message(), "too many array items (limit 1024)"));

        size_t big = TOML_MAX_SIZE + 1;
        _cleanup_free_ char *huge = malloc(big);
        assert_non_null(huge);
        memset(huge, '\n', big);
        BangerConfig c;
        error_clear();
        assert_int_equal(config_parse_string(huge, big, "config.toml", &c), -E2BIG);

        /* Embedded NUL: the length, not a terminator, bounds the input. */
        error_clear();
        assert_int_equal(config_parse_string("x = 1\0y", 7, "config.toml", &c), -EBADMSG);
        assert_non_null(strstr(error_last_message(), "control character U+0000"));
}

static void test_values(void **state) {
        expect_error("vm_defaults.vcpu = \"4\"\n", -EINVAL, "vcpu in [vm_defaults] must be an integer, not a string");
        expect_error("jailer_enabled = 1\n", -EINVAL, "jailer_enabled must be a boolean, not an integer");
        expect_error("qemu_bin = true\n", -EINVAL, "qemu_bin must be a string, not a boolean");
        expect_error("[vm_defaults]\nvcpu = 0\n", -EINVAL,
                     "config.toml:2: vcpu in [vm_defaults] must be between 1 and 64");
        expect_error("[vm_defaults]\nvcpu = 65\n", -EINVAL, "between 1 and 64");
        expect_error("tap_pool_size = 65\n", -EINVAL, "tap_pool_size must be between 0 and 64");
        expect_error("tap_pool_size = -1\n", -EINVAL, "tap_pool_size must be between 0 and 64");
        expect_error("max_taps = 0\n", -EINVAL, "max_taps must be between 1 and 4096");
        expect_error("max_loop_devices = 4097\n", -EINVAL, "max_loop_devices must be between 1 and 4096");
        expect_error("dns_port = 0\n", -EINVAL, "dns_port must be between 1 and 65535");
        expect_error("dns_port = 65536\n", -EINVAL, "dns_port must be between 1 and 65535");
        expect_error("stop_timeout_sec = 601\n", -EINVAL, "stop_timeout_sec must be between 1 and 600");
        expect_error("jailer_uid = 0\n", -EINVAL, "jailer_uid must be between 1 and");
        expect_error("log_level = \"verbose\"\n", -EINVAL, "log_level must be one of");
        expect_error("log_level = \"crit\"\n", -EINVAL, "log_level must be one of");
        expect_error("default_vmm = \"kvm\"\n", -EINVAL, "default_vmm must be \"auto\", \"firecracker\" or \"qemu\"");
        expect_error("firecracker_bin = \"bin/firecracker\"\n", -EINVAL,
                     "firecracker_bin must be an absolute path or a program name");
        expect_error("firecracker_bin = \"\"\n", -EINVAL, "firecracker_bin must be");
        expect_error("jailer_chroot_base = \"/srv/../etc\"\n", -EINVAL, "jailer_chroot_base must be an absolute path");
        expect_error("bridge_name = \"eth0\"\n", -EINVAL, "bridge_name must be \"br-fc\"");
        expect_error("bridge_name = \"br-fc-\"\n", -EINVAL, "bridge_name must be");
        expect_error("bridge_name = \"br-fc-0123456789\"\n", -EINVAL, "bridge_name must be");
        expect_error("bridge_name = \"br-fc-A\"\n", -EINVAL, "bridge_name must be");
        /* What the helper accepts (net/bridge.c): no '-' in the suffix. */
        expect_error("bridge_name = \"br-fc-a-b\"\n", -EINVAL, "bridge_name must be");
        expect_error("bridge_name = \"br-fc--\"\n", -EINVAL, "bridge_name must be");
        expect_error("bridge_ip = \"172.16.0.256\"\n", -EINVAL, "bridge_ip must be an IPv4 address");
        expect_error("cidr = \"172.16.0.1/24\"\n", -EINVAL, "cidr must be an IPv4 network");
        expect_error("cidr = \"172.16.0.0/31\"\n", -EINVAL, "cidr must be an IPv4 network");
        expect_error("cidr = \"172.16.0.0/+24\"\n", -EINVAL, "cidr must be an IPv4 network");
        expect_error("cidr = \"172.16.0.0\"\n", -EINVAL, "cidr must be an IPv4 network");
        expect_error("bridge_ip = \"10.0.0.1\"\n", -EINVAL,
                     "config.toml:1: bridge_ip 10.0.0.1 is outside cidr 172.16.0.0/24");
        expect_error("\ncidr = \"10.1.0.0/16\"\n", -EINVAL,
                     "config.toml:2: bridge_ip 172.16.0.1 is outside cidr 10.1.0.0/16");
        expect_error("bridge_ip = \"172.16.0.255\"\n", -EINVAL, "is the network or broadcast address");
        expect_error("dns_listen = \"localhost\"\n", -EINVAL, "dns_listen must be an IPv4 or IPv6 address");
        expect_error("default_image = \"My_Image\"\n", -EINVAL, "default_image must be a name");
        expect_error("debootstrap_mirror = \"ftp://x/debian\"\n", -EINVAL, "debootstrap_mirror must be an http");
        expect_error("debootstrap_mirror = \"http://a b\"\n", -EINVAL, "debootstrap_mirror must be an http");
        expect_error("debootstrap_suite = \"Bookworm\"\n", -EINVAL, "debootstrap_suite must be a suite name");
        expect_error("jailer_enabled = true\njailer_uid = 5\n", -EINVAL,
                     "config.toml:1: jailer_enabled = true needs jailer_uid and jailer_gid");
        expect_error("[vm_defaults]\nmemory = 0\n", -EINVAL, "memory in [vm_defaults] must be between 1 and");
        expect_error("[vm_defaults]\nmemory = \"1.5G\"\n", -EINVAL, "must be a whole number of MiB");
        expect_error("[vm_defaults]\nmemory = \"100K\"\n", -EINVAL, "must be a whole number of MiB");
        expect_error("[vm_defaults]\nmemory = \"0M\"\n", -EINVAL, "must be between 1 MiB");
        expect_error("[vm_defaults]\nmemory = true\n", -EINVAL,
                     "memory in [vm_defaults] must be a string, not a boolean");
        expect_error("[vm_defaults]\ndisk_size = 8\n", -EINVAL, "disk_size in [vm_defaults] must be a string");
        expect_error("[vm_defaults]\ndisk_size = \"0\"\n", -EINVAL, "must be a size in whole MiB");
        expect_error("[vm_defaults]\ndisk_size = \"100T\"\n", -EINVAL, "must be at most");
        expect_error("image_import_max = 64\n", -EINVAL, "image_import_max must be a string");
        expect_error("image_import_max = \"2T\"\n", -EINVAL, "image_import_max must be at most");
        expect_error("[vm_defaults]\nimage = \"-x\"\n", -EINVAL, "image in [vm_defaults] must be a name");
}

static void test_files(void **state) {
        expect_error("\n[[file]]\nhost = \"/a\"\n", -EINVAL, "config.toml:2: [[file]] needs both 'host' and 'guest'");
        expect_error("[[file]]\nhost = \"/a\"\nguest = \"b\"\n", -EINVAL,
                     "config.toml:3: guest in [[file]] must be an absolute path");
        expect_error("[[file]]\nhost = \"/a\"\nguest = \"/b/../c\"\n", -EINVAL,
                     "guest in [[file]] must be an absolute path");
        expect_error("[[file]]\nhost = \"/a\"\nguest = \"/b/\"\n", -EINVAL, "guest in [[file]] must be");
        expect_error("[[file]]\nhost = \"/a\"\nguest = \"/b\\nc\"\n", -EINVAL, "guest in [[file]] must be");
        expect_error("[[file]]\nhost = \"a\"\nguest = \"/b\"\n", -EINVAL, "host in [[file]] must be an absolute path");
        expect_error("[[file]]\nhost = \"/a\"\nguest = \"/b\"\nmode = 644\n", -EINVAL, "written 0o644 or \"0644\"");
        expect_error("[[file]]\nhost = \"/a\"\nguest = \"/b\"\nmode = 0o4755\n", -EINVAL, "up to 0777");
        expect_error("[[file]]\nhost = \"/a\"\nguest = \"/b\"\nmode = \"644x\"\n", -EINVAL, "mode in [[file]]");
        expect_error("[[file]]\nhost = \"/a\"\nguest = \"/b\"\n[[file]]\nhost = \"/c\"\nguest = \"/b\"\n", -EINVAL,
                     "config.toml:6: guest path '/b' appears in more than one [[file]]");
}

static void test_load(void **state) {
        char tmpl[] = "/tmp/banger-test-config-XXXXXX";
        assert_non_null(mkdtemp(tmpl));
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, tmpl);
        assert_true(dfd >= 0);
        BangerConfig c;

        /* Missing file: defaults. */
        assert_int_equal(config_load(dfd, CONFIG_FILE_NAME, &c), 0);
        assert_int_equal(c.vm_defaults.vcpu, 2);
        config_done(&c);

        const char *text = "[vm_defaults]\nvcpu = 3\n";
        assert_int_equal(write_file_atomic_at(dfd, CONFIG_FILE_NAME, text, strlen(text), 0644), 0);
        assert_int_equal(config_load(dfd, CONFIG_FILE_NAME, &c), 0);
        assert_int_equal(c.vm_defaults.vcpu, 3);
        config_done(&c);

        /* Errors name the file and line. */
        text = "vcpu = 3\n";
        assert_int_equal(write_file_atomic_at(dfd, CONFIG_FILE_NAME, text, strlen(text), 0600), 0);
        error_clear();
        assert_int_equal(config_load(dfd, CONFIG_FILE_NAME, &c), -EINVAL);
        assert_string_equal(error_last_message(), "config.toml:1: unknown key 'vcpu'");

        /* Others could point firecracker_bin at their own program. */
        assert_int_equal(write_file_atomic_at(dfd, CONFIG_FILE_NAME, "", 0, 0666), 0);
        assert_int_equal(fchmodat(dfd, CONFIG_FILE_NAME, 0666, 0), 0); /* the umask narrowed it */
        assert_int_equal(config_load(dfd, CONFIG_FILE_NAME, &c), -EPERM);
        assert_non_null(strstr(error_last_message(), "writable by group or others"));
        assert_int_equal(unlinkat(dfd, CONFIG_FILE_NAME, 0), 0);

        /* A symlink is never followed, not even to a good file. */
        assert_int_equal(write_file_atomic_at(dfd, "real.toml", "", 0, 0600), 0);
        assert_int_equal(symlinkat("real.toml", dfd, CONFIG_FILE_NAME), 0);
        assert_int_equal(config_load(dfd, CONFIG_FILE_NAME, &c), -ELOOP);
        assert_int_equal(unlinkat(dfd, CONFIG_FILE_NAME, 0), 0);

        assert_int_equal(mkdirat(dfd, CONFIG_FILE_NAME, 0700), 0);
        assert_int_equal(config_load(dfd, CONFIG_FILE_NAME, &c), -EBADFD);
        assert_int_equal(unlinkat(dfd, CONFIG_FILE_NAME, AT_REMOVEDIR), 0);

        assert_int_equal(unlinkat(dfd, "real.toml", 0), 0);
        assert_int_equal(rmdir(tmpl), 0);
}

static void test_log_level(void **state) {
        BangerConfig c;
        int saved = log_get_max_level();
        assert_int_equal(parse("log_level = \"warning\"\n", &c), 0);
        assert_int_equal(unsetenv("BANGER_LOG_LEVEL"), 0);
        assert_int_equal(config_apply_log_level(&c), 0);
        assert_int_equal(log_get_max_level(), LOG_WARNING);

        /* The environment wins over the file. */
        assert_int_equal(setenv("BANGER_LOG_LEVEL", "debug", 1), 0);
        assert_int_equal(config_apply_log_level(&c), 0);
        assert_int_equal(log_get_max_level(), LOG_DEBUG);
        assert_int_equal(setenv("BANGER_LOG_LEVEL", "chatty", 1), 0);
        assert_int_equal(config_apply_log_level(&c), -EINVAL);
        config_done(&c);

        /* No log_level in the file: the level is left alone. */
        assert_int_equal(unsetenv("BANGER_LOG_LEVEL"), 0);
        log_set_max_level(LOG_NOTICE);
        assert_int_equal(parse("", &c), 0);
        assert_int_equal(config_apply_log_level(&c), 0);
        assert_int_equal(log_get_max_level(), LOG_NOTICE);
        config_done(&c);
        log_set_max_level(saved);
}

/* idle_timeout: seconds or a duration string, off by default; idle_action
 * stop (the default) or suspend. */
static void test_idle(void **state) {
        BangerConfig c;
        assert_int_equal(parse("", &c), 0);
        assert_int_equal(c.idle_timeout_sec, 0);
        assert_int_equal(c.idle_action, CONFIG_IDLE_STOP);
        config_done(&c);
        assert_int_equal(parse("idle_timeout = \"1h30m\"\nidle_action = \"suspend\"\n", &c), 0);
        assert_int_equal(c.idle_timeout_sec, 5400);
        assert_int_equal(c.idle_action, CONFIG_IDLE_SUSPEND);
        config_done(&c);
        assert_int_equal(parse("idle_timeout = 45\n", &c), 0);
        assert_int_equal(c.idle_timeout_sec, 45);
        config_done(&c);
        assert_int_equal(parse("idle_timeout = \"off\"\n", &c), 0);
        assert_int_equal(c.idle_timeout_sec, 0);
        config_done(&c);
        expect_error("idle_timeout = \"soon\"\n", -EINVAL, "idle_timeout must be a duration like \"30m\"");
        expect_error("idle_timeout = \"5x\"\n", -EINVAL, "idle_timeout must be a duration");
        expect_error("idle_timeout = -1\n", -EINVAL, "idle_timeout must be a duration");
        expect_error("idle_timeout = \"400d\"\n", -EINVAL, "at most 31622400 s");
        expect_error("idle_action = \"hibernate\"\n", -EINVAL, "idle_action must be \"stop\" or \"suspend\"");
        expect_error("idle_action = 1\n", -EINVAL, "idle_action must be \"stop\" or \"suspend\"");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),     cmocka_unit_test(test_bridge_name_matches_helper),
                cmocka_unit_test(test_full),         cmocka_unit_test(test_toml_forms),
                cmocka_unit_test(test_unknown_keys), cmocka_unit_test(test_syntax_errors),
                cmocka_unit_test(test_limits),       cmocka_unit_test(test_values),
                cmocka_unit_test(test_files),        cmocka_unit_test(test_load),
                cmocka_unit_test(test_log_level),    cmocka_unit_test(test_idle),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
