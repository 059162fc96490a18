/* SPDX-License-Identifier: MIT */
/* Pure tests of the networking layer: validators, ruleset rendering
 * (golden text in tests/data/net/), DNS parsing and answers. The kernel
 * side is exercised in test-netns-net.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bridge.h"
#include "dns.h"
#include "error.h"
#include "firewall.h"
#include "fs-util.h"
#include "ipv4-subnet.h"
#include "netlink.h"
#include "resolved.h"
#include "string-util.h"
#include "tap.h"
#include "tcp-port.h"

static struct in_addr ip(const char *s) {
        struct in_addr a;
        assert_int_equal(ipv4_parse(s, &a), 0);
        return a;
}

static void test_ifname(void **state) {
        assert_true(ifname_is_valid("eth0"));
        assert_true(ifname_is_valid("br-fc"));
        assert_true(ifname_is_valid("a.b_c"));
        assert_true(ifname_is_valid("abcdefghijklmno"));   /* 15 */
        assert_false(ifname_is_valid("abcdefghijklmnop")); /* 16 */
        assert_false(ifname_is_valid(""));
        assert_false(ifname_is_valid(NULL));
        assert_false(ifname_is_valid("."));
        assert_false(ifname_is_valid(".."));
        assert_false(ifname_is_valid("a/b"));
        assert_false(ifname_is_valid("a b"));
        assert_false(ifname_is_valid("eth\"0"));
        assert_false(ifname_is_valid("eth0;"));
}

static void test_bridge_name(void **state) {
        assert_true(bridge_name_is_valid("br-fc"));
        assert_true(bridge_name_is_valid("br-fc-1"));
        assert_true(bridge_name_is_valid("br-fc-abc123456")); /* 15 chars */
        assert_false(bridge_name_is_valid("br-fc-abc1234567"));
        assert_false(bridge_name_is_valid("br-fc-"));
        assert_false(bridge_name_is_valid("br-fc-A"));
        assert_false(bridge_name_is_valid("br-fc-a.b"));
        assert_false(bridge_name_is_valid("br-fcx"));
        assert_false(bridge_name_is_valid("docker0"));
        assert_false(bridge_name_is_valid("eth0"));
        assert_false(bridge_name_is_valid(NULL));
}

static void test_tap_names(void **state) {
        char n[IFNAMSIZ];
        assert_true(tap_name_is_valid("bgt1"));
        assert_true(tap_name_is_valid("bgtabcdef123456"));
        assert_false(tap_name_is_valid("bgtabcdef1234567"));
        assert_false(tap_name_is_valid("bgt"));
        assert_false(tap_name_is_valid("bgtA"));
        assert_false(tap_name_is_valid("bgt-x"));
        assert_false(tap_name_is_valid("tap0"));
        assert_false(tap_name_is_valid("eth0"));
        assert_false(tap_name_is_valid(NULL));

        assert_int_equal(tap_name_for_vm("a1b2", n), 0);
        assert_string_equal(n, "bgta1b2");
        assert_int_equal(tap_name_for_vm("0123456789abcdef", n), 0);
        assert_string_equal(n, "bgt0123456789ab");
        assert_true(tap_name_is_valid(n));
        assert_int_equal(tap_name_for_vm("Bad", n), -EINVAL);
        assert_int_equal(tap_name_for_vm("", n), -EINVAL);
        assert_int_equal(tap_name_for_vm("a-b", n), -EINVAL);

        char m[IFNAMSIZ];
        assert_int_equal(tap_name_random(n), 0);
        assert_int_equal(tap_name_random(m), 0);
        assert_true(tap_name_is_valid(n));
        assert_int_equal(strlen(n), 14);
        assert_string_not_equal(n, m);
}

static void test_ipv4(void **state) {
        struct in_addr a;
        Ipv4Subnet s;
        char buf[IPV4_STRLEN];
        assert_int_equal(ipv4_parse("172.16.0.1", &a), 0);
        assert_string_equal(ipv4_format(a, buf), "172.16.0.1");
        assert_int_equal(ipv4_parse("172.16.0", &a), -EINVAL);
        assert_int_equal(ipv4_parse("172.016.0.1", &a), -EINVAL);
        assert_int_equal(ipv4_parse("0x7f.0.0.1", &a), -EINVAL);
        assert_int_equal(ipv4_parse("1.2.3.256", &a), -EINVAL);
        assert_int_equal(ipv4_parse("1.2.3.4 ", &a), -EINVAL);
        assert_int_equal(ipv4_parse("0.0.0.0", &a), 0);

        assert_int_equal(ipv4_subnet_parse("172.16.0.0/24", &s), 0);
        assert_int_equal(s.prefixlen, 24);
        assert_string_equal(ipv4_format(s.network, buf), "172.16.0.0");
        assert_int_equal(ipv4_subnet_parse("172.16.0.1/24", &s), -EINVAL); /* host bits */
        assert_int_equal(ipv4_subnet_parse("172.16.0.0/31", &s), -EINVAL);
        assert_int_equal(ipv4_subnet_parse("172.16.0.0/", &s), -EINVAL);
        assert_int_equal(ipv4_subnet_parse("172.16.0.0/+8", &s), -EINVAL);
        assert_int_equal(ipv4_subnet_parse("172.16.0.0", &s), -EINVAL);

        assert_int_equal(ipv4_subnet_from_addr(ip("172.16.0.1"), 24, &s), 0);
        assert_true(ipv4_subnet_contains_host(&s, ip("172.16.0.1")));
        assert_true(ipv4_subnet_contains_host(&s, ip("172.16.0.254")));
        assert_false(ipv4_subnet_contains_host(&s, ip("172.16.0.0")));
        assert_false(ipv4_subnet_contains_host(&s, ip("172.16.0.255")));
        assert_false(ipv4_subnet_contains_host(&s, ip("172.16.1.2")));
        assert_false(ipv4_subnet_contains_host(&s, ip("10.0.0.1")));
}

static char *read_golden(const char *name) {
        _cleanup_close_ int dfd = open_dir_nofollow(AT_FDCWD, TEST_DATA_DIR "/net");
        assert_true(dfd >= 0);
        char *s = NULL;
        assert_int_equal(read_file_at(dfd, name, 1 << 20, &s, NULL), 0);
        return s;
}

static void test_firewall_render(void **state) {
        Ipv4Subnet s;
        assert_int_equal(ipv4_subnet_parse("172.16.0.0/24", &s), 0);
        /* Numeric order by address, whatever the input order. */
        NatEntry e[] = {
                { ip("172.16.0.10"), "bgtdb" },
                { ip("172.16.0.2"), "bgtweb" },
        };
        NatEntry rev[] = { e[1], e[0] };
        _cleanup_free_ char *a = NULL, *b = NULL, *golden = read_golden("nat-two.nft");
        assert_int_equal(firewall_render("banger", e, 2, "eth0", &s, false, &a), 0);
        assert_string_equal(a, golden);
        assert_int_equal(firewall_render("banger", rev, 2, "eth0", &s, false, &b), 0);
        assert_string_equal(b, golden);

        _cleanup_free_ char *empty = NULL, *golden_empty = read_golden("nat-empty.nft");
        assert_int_equal(firewall_render("banger", NULL, 0, "eth0", &s, false, &empty), 0);
        assert_string_equal(empty, golden_empty);
}

static void test_firewall_validation(void **state) {
        Ipv4Subnet s;
        char *t = NULL;
        assert_int_equal(ipv4_subnet_parse("172.16.0.0/24", &s), 0);
        NatEntry outside[] = { { ip("10.0.0.2"), "bgtweb" } };
        error_clear();
        assert_int_equal(firewall_render("banger", outside, 1, "eth0", &s, false, &t), -EINVAL);
        assert_non_null(strstr(error_last_message(), "10.0.0.2"));
        NatEntry bcast[] = { { ip("172.16.0.255"), "bgtweb" } };
        assert_int_equal(firewall_render("banger", bcast, 1, "eth0", &s, false, &t), -EINVAL);
        NatEntry badtap[] = { { ip("172.16.0.2"), "eth1" } };
        assert_int_equal(firewall_render("banger", badtap, 1, "eth0", &s, false, &t), -EINVAL);
        NatEntry inject[] = { { ip("172.16.0.2"), "bgt\" accept" } };
        assert_int_equal(firewall_render("banger", inject, 1, "eth0", &s, false, &t), -EINVAL);
        NatEntry dup_ip[] = { { ip("172.16.0.2"), "bgta" }, { ip("172.16.0.2"), "bgtb" } };
        assert_int_equal(firewall_render("banger", dup_ip, 2, "eth0", &s, false, &t), -EINVAL);
        NatEntry dup_tap[] = { { ip("172.16.0.2"), "bgta" }, { ip("172.16.0.3"), "bgta" } };
        assert_int_equal(firewall_render("banger", dup_tap, 2, "eth0", &s, false, &t), -EINVAL);
        NatEntry ok[] = { { ip("172.16.0.2"), "bgta" } };
        assert_int_equal(firewall_render("banger", ok, 1, "eth\"0", &s, false, &t), -EINVAL);
        assert_int_equal(firewall_render("banger", ok, 1, "bgtx", &s, false, &t), -EINVAL);
        assert_int_equal(firewall_render("banger", ok, 1, NULL, &s, false, &t), -EINVAL);
        /* Only a banger table name. */
        assert_int_equal(firewall_render("filter", ok, 1, "eth0", &s, false, &t), -EINVAL);
        assert_int_equal(firewall_render("banger-x y", ok, 1, "eth0", &s, false, &t), -EINVAL);
        assert_null(t);
}

static void test_firewall_table_names(void **state) {
        char t[FIREWALL_TABLE_MAX];
        assert_int_equal(firewall_table_name("br-fc", t), 0);
        assert_string_equal(t, "banger");
        assert_int_equal(firewall_table_name("br-fc-b", t), 0);
        assert_string_equal(t, "banger-b");
        assert_int_equal(firewall_table_name("br-fc-123456789", t), 0);
        assert_string_equal(t, "banger-123456789");
        assert_int_equal(firewall_table_name("br0", t), -EINVAL);
        assert_int_equal(firewall_table_name("br-fc-a-b", t), -EINVAL);
        assert_true(firewall_table_is_banger("banger"));
        assert_true(firewall_table_is_banger("banger-b"));
        assert_false(firewall_table_is_banger("banger-"));
        assert_false(firewall_table_is_banger("banger-B"));
        assert_false(firewall_table_is_banger("bangerb"));
        assert_false(firewall_table_is_banger("filter"));
        assert_false(firewall_table_is_banger(NULL));

        /* The ip_forward mark is an empty chain at the end of the table. */
        Ipv4Subnet s;
        assert_int_equal(ipv4_subnet_parse("172.16.1.0/24", &s), 0);
        NatEntry e[] = { { ip("172.16.1.2"), "bgtweb" } };
        _cleanup_free_ char *text = NULL;
        assert_int_equal(firewall_render("banger-b", e, 1, "eth0", &s, true, &text), 0);
        assert_true(startswith(text, "table ip banger-b {\n"));
        /* Its forward chain is about its own bridge. */
        assert_non_null(strstr(text, "\t\tiifname \"br-fc-b\" drop\n\t\toifname \"br-fc-b\" drop\n"));
        assert_true(endswith(text, "\t}\n\n\tchain " FIREWALL_FORWARD_MARK " {\n\t}\n}\n"));
}

/* ---- DNS ---- */

static size_t make_query(uint8_t *buf, uint16_t id, uint16_t flags, const char *name, uint16_t qtype) {
        size_t off = 12;
        memset(buf, 0, 12);
        buf[0] = (uint8_t) (id >> 8), buf[1] = (uint8_t) id;
        buf[2] = (uint8_t) (flags >> 8), buf[3] = (uint8_t) flags;
        buf[5] = 1;
        const char *p = name;
        while (*p) {
                const char *dot = strchr(p, '.');
                size_t l = dot ? (size_t) (dot - p) : strlen(p);
                buf[off++] = (uint8_t) l;
                memcpy(buf + off, p, l);
                off += l;
                p += l + (dot ? 1 : 0);
        }
        buf[off++] = 0;
        buf[off++] = (uint8_t) (qtype >> 8), buf[off++] = (uint8_t) qtype;
        buf[off++] = 0, buf[off++] = 1;
        return off;
}

static int lookup(const char *name, struct in_addr *ret, void *userdata) {
        (*(int *) userdata)++;
        if (strcmp(name, "web") == 0)
                return inet_pton(AF_INET, "172.16.0.2", ret) == 1 ? 0 : -EIO;
        if (strcmp(name, "broken") == 0)
                return -EIO;
        return -ENOENT;
}

typedef struct Reply {
        int r;
        size_t len;
        uint8_t buf[DNS_MAX_UDP];
} Reply;

static Reply ask(const uint8_t *q, size_t qlen, int *calls) {
        Reply rep = {};
        rep.r = dns_server_handle_packet(q, qlen, lookup, calls, rep.buf, sizeof(rep.buf), &rep.len);
        return rep;
}

/* Functions, not macros: each evaluates its argument (often ask()) once. */
static int RCODE(Reply rep) {
        return rep.buf[3] & 0xf;
}
static int ANCOUNT(Reply rep) {
        return (rep.buf[6] << 8) | rep.buf[7];
}
static int QDCOUNT(Reply rep) {
        return (rep.buf[4] << 8) | rep.buf[5];
}

static void test_dns_answers(void **state) {
        uint8_t q[600];
        int calls = 0;
        size_t l = make_query(q, 0xbeef, 0x0100, "web.vm", DNS_TYPE_A);
        Reply rep = ask(q, l, &calls);
        assert_int_equal(rep.r, 0);
        assert_int_equal(rep.len, l + 16);
        assert_int_equal(rep.buf[0], 0xbe);
        assert_int_equal(rep.buf[1], 0xef);
        assert_int_equal(rep.buf[2], 0x85); /* QR, AA, RD */
        assert_int_equal(RCODE(rep), DNS_RCODE_NOERROR);
        assert_int_equal(QDCOUNT(rep), 1);
        assert_int_equal(ANCOUNT(rep), 1);
        assert_memory_equal(rep.buf + 12, q + 12, l - 12);
        static const uint8_t answer[] = { 0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, DNS_TTL, 0, 4, 172, 16, 0, 2 };
        assert_memory_equal(rep.buf + l, answer, sizeof(answer));

        /* Case-insensitive, question echoed with its original case (0x20). */
        l = make_query(q, 1, 0, "WeB.Vm", DNS_TYPE_A);
        rep = ask(q, l, &calls);
        assert_int_equal(ANCOUNT(rep), 1);
        assert_memory_equal(rep.buf + 13, "WeB", 3);

        l = make_query(q, 2, 0, "nope.vm", DNS_TYPE_A);
        rep = ask(q, l, &calls);
        assert_int_equal(RCODE(rep), DNS_RCODE_NXDOMAIN);
        assert_int_equal(ANCOUNT(rep), 0);
        assert_int_equal(rep.len, l);

        l = make_query(q, 3, 0, "web.vm", 28 /* AAAA */);
        rep = ask(q, l, &calls);
        assert_int_equal(RCODE(rep), DNS_RCODE_NOERROR);
        assert_int_equal(ANCOUNT(rep), 0);

        l = make_query(q, 4, 0, "web.vm", DNS_TYPE_ANY);
        assert_int_equal(ANCOUNT(ask(q, l, &calls)), 1);

        l = make_query(q, 5, 0, "broken.vm", DNS_TYPE_A);
        assert_int_equal(RCODE(ask(q, l, &calls)), DNS_RCODE_SERVFAIL);

        int before = calls;
        l = make_query(q, 6, 0, "example.com", DNS_TYPE_A);
        assert_int_equal(RCODE(ask(q, l, &calls)), DNS_RCODE_REFUSED);
        l = make_query(q, 7, 0, "a.web.vm", DNS_TYPE_A);
        assert_int_equal(RCODE(ask(q, l, &calls)), DNS_RCODE_NXDOMAIN);
        l = make_query(q, 8, 0, "Bad_Name.vm", DNS_TYPE_A);
        assert_int_equal(RCODE(ask(q, l, &calls)), DNS_RCODE_NXDOMAIN);
        l = make_query(q, 9, 0, "vm", DNS_TYPE_A);
        rep = ask(q, l, &calls);
        assert_int_equal(RCODE(rep), DNS_RCODE_NOERROR);
        assert_int_equal(ANCOUNT(rep), 0);
        assert_int_equal(calls, before); /* none of these reached the lookup */

        /* Other opcodes: NOTIMP, header only. */
        l = make_query(q, 10, 2u << 11, "web.vm", DNS_TYPE_A);
        rep = ask(q, l, &calls);
        assert_int_equal(RCODE(rep), DNS_RCODE_NOTIMP);
        assert_int_equal(rep.len, DNS_HEADER_SIZE);
        assert_int_equal((rep.buf[2] >> 3) & 0xf, 2);

        /* Class CHAOS: NOTIMP. */
        l = make_query(q, 11, 0, "web.vm", DNS_TYPE_A);
        q[l - 1] = 3;
        assert_int_equal(RCODE(ask(q, l, &calls)), DNS_RCODE_NOTIMP);
}

static void test_dns_malformed(void **state) {
        uint8_t q[600];
        int calls = 0;
        Reply rep;

        /* Too short for a header, or a response: no reply at all. */
        size_t l = make_query(q, 1, 0, "web.vm", DNS_TYPE_A);
        assert_int_equal(ask(q, 11, &calls).r, -EBADMSG);
        q[2] |= 0x80;
        assert_int_equal(ask(q, l, &calls).r, -EBADMSG);
        q[2] &= 0x7f;

        /* Truncated question: FORMERR, header only. */
        for (size_t cut = 12; cut < l; cut++) {
                rep = ask(q, cut, &calls);
                assert_int_equal(rep.r, 0);
                assert_int_equal(RCODE(rep), DNS_RCODE_FORMERR);
                assert_int_equal(rep.len, DNS_HEADER_SIZE);
                assert_int_equal(QDCOUNT(rep), 0);
        }

        /* A compression pointer in the question is refused. */
        uint8_t ptr[] = { 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w', 'e', 'b', 0xc0, 12, 0, 1, 0, 1 };
        assert_int_equal(RCODE(ask(ptr, sizeof(ptr), &calls)), DNS_RCODE_FORMERR);
        uint8_t loop[] = { 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1 };
        assert_int_equal(RCODE(ask(loop, sizeof(loop), &calls)), DNS_RCODE_FORMERR);

        /* Two questions, or an answer record in a query. */
        l = make_query(q, 1, 0, "web.vm", DNS_TYPE_A);
        q[5] = 2;
        assert_int_equal(RCODE(ask(q, l, &calls)), DNS_RCODE_FORMERR);
        q[5] = 1, q[7] = 1;
        assert_int_equal(RCODE(ask(q, l, &calls)), DNS_RCODE_FORMERR);
        q[7] = 0;

        /* An EDNS OPT record in the additional section is fine. */
        q[11] = 1;
        static const uint8_t opt[] = { 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0 };
        memcpy(q + l, opt, sizeof(opt));
        assert_int_equal(ANCOUNT(ask(q, l + sizeof(opt), &calls)), 1);

        /* Labels with dots or control bytes. */
        l = make_query(q, 1, 0, "web.vm", DNS_TYPE_A);
        q[14] = '.'; /* the label "w.b" */
        assert_int_equal(RCODE(ask(q, l, &calls)), DNS_RCODE_FORMERR);
        q[14] = 0;
        assert_int_equal(RCODE(ask(q, l, &calls)), DNS_RCODE_FORMERR);

        /* Name length limits: 255 bytes on the wire is the maximum. */
        char name[400] = "";
        for (int i = 0; i < 3; i++)
                strcat(name, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."); /* 63 */
        size_t base = strlen(name);
        memset(name + base, 'b', 58);
        strcpy(name + base + 58, ".vm");
        l = make_query(q, 1, 0, name, DNS_TYPE_A);
        assert_int_equal(l - 12 - 4, 255);
        DnsQuestion dq;
        assert_int_equal(dns_parse_query(q, l, &dq), 0);
        assert_int_equal(strlen(dq.name), 253);
        assert_int_equal(RCODE(ask(q, l, &calls)), DNS_RCODE_NXDOMAIN);
        memset(name + base, 'b', 59); /* one byte more: 256 on the wire */
        strcpy(name + base + 59, ".vm");
        l = make_query(q, 1, 0, name, DNS_TYPE_A);
        assert_int_equal(dns_parse_query(q, l, &dq), -EBADMSG);
        assert_int_equal(RCODE(ask(q, l, &calls)), DNS_RCODE_FORMERR);

        /* A label longer than 63 (0x40 / 0x80 label types) is refused. */
        l = make_query(q, 1, 0, "web.vm", DNS_TYPE_A);
        q[12] = 64;
        assert_int_equal(RCODE(ask(q, l, &calls)), DNS_RCODE_FORMERR);
        assert_int_equal(calls, 1); /* only the EDNS query was looked up */

        /* Replies never exceed the caller's buffer. */
        l = make_query(q, 1, 0, "web.vm", DNS_TYPE_A);
        uint8_t small[20];
        size_t n;
        assert_int_equal(dns_server_handle_packet(q, l, lookup, &calls, small, sizeof(small), &n), -EBADMSG);
        assert_int_equal(dns_build_reply(q, l, NULL, 0, NULL, small, 11, &n), -ENOBUFS);
}

static void test_resolved_absent(void **state) {
        if (resolved_is_running()) {
                print_message("systemd-resolved is running here; the absent path is not testable\n");
                skip();
        }
        struct in_addr lo = ip("127.0.0.1");
        assert_int_equal(resolved_link_configure(1, lo, 5353), -EOPNOTSUPP);
        assert_int_equal(resolved_link_revert(1), -EOPNOTSUPP);
        assert_int_equal(resolved_link_configure(0, lo, 5353), -EINVAL);
}

/* A loopback listener on an ephemeral port; *ret_port gets the port. */
static int listen_loopback(unsigned *ret_port) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t l = sizeof(sa);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        assert_int_equal(listen(fd, 4), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &l), 0);
        *ret_port = ntohs(sa.sin_port);
        return fd;
}

static void test_tcp_port_open(void **state) {
        unsigned port;
        int lfd = listen_loopback(&port);
        assert_int_equal(tcp_port_open("127.0.0.1", port, now_monotonic() + 5 * USEC_PER_SEC, -EBADF), 1);
        close(lfd); /* nothing listens there now: refused until the deadline */
        usec_t t0 = now_monotonic();
        assert_int_equal(tcp_port_open("127.0.0.1", port, t0 + 300 * USEC_PER_MSEC, -EBADF), 0);
        assert_true(now_monotonic() - t0 >= 300 * USEC_PER_MSEC);
        /* A readable cancel fd ends the wait at once. */
        int efd = eventfd(1, EFD_CLOEXEC);
        t0 = now_monotonic();
        assert_int_equal(tcp_port_open("127.0.0.1", port, t0 + 10 * USEC_PER_SEC, efd), -ECANCELED);
        assert_true(now_monotonic() - t0 < USEC_PER_SEC);
        close(efd);
        assert_int_equal(tcp_port_open("not-an-address", 22, now_monotonic() + USEC_PER_SEC, -EBADF), -EINVAL);
        assert_int_equal(tcp_port_open(NULL, 22, now_monotonic() + USEC_PER_SEC, -EBADF), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ifname),
                cmocka_unit_test(test_bridge_name),
                cmocka_unit_test(test_tap_names),
                cmocka_unit_test(test_ipv4),
                cmocka_unit_test(test_firewall_render),
                cmocka_unit_test(test_firewall_validation),
                cmocka_unit_test(test_firewall_table_names),
                cmocka_unit_test(test_dns_answers),
                cmocka_unit_test(test_dns_malformed),
                cmocka_unit_test(test_resolved_absent),
                cmocka_unit_test(test_tcp_port_open),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
