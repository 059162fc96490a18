/* SPDX-License-Identifier: MIT */
/* The agent's identity request (src/agent/agent-identity.c): parsing, and
 * applying it in network and UTS namespaces of the test's own to a dummy
 * NIC that carries the "snapshot's" MAC, address and default route, with a
 * temporary directory as the guest's root. Applying needs root (it exits 77
 * without); the clock is left alone (the namespaces do not cover it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent-identity.h"
#include "fs-util.h"
#include "spawn.h"
#include "string-util.h"

#define REQUEST                                                                                                \
        "# Written by banger when this VM was made from a snapshot\n"                                          \
        "HOSTNAME=clone-1\nADDRESS=172.31.0.7/24\nGATEWAY=172.31.0.1\nMAC=02:fc:ac:1f:00:07\nDNS=172.31.0.1\n" \
        "FROM_MAC=02:fc:ac:1f:00:02\nTIME_NS=0\n"                                                              \
        "ENTROPY=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"

#define RESUMED                                    \
        "RESUMED=1\nTIME_NS=1796612881123456789\n" \
        "ENTROPY=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n"

static void test_parse(void **state) {
        AgentIdentity id = {};
        assert_int_equal(agent_identity_parse(REQUEST, &id), 0);
        assert_string_equal(id.net.hostname, "clone-1");
        assert_string_equal(id.net.address, "172.31.0.7");
        assert_int_equal(id.net.prefix, 24);
        assert_string_equal(id.net.mac, "02:fc:ac:1f:00:07");
        assert_string_equal(id.from_mac, "02:fc:ac:1f:00:02");
        assert_int_equal(id.n_entropy, 32);
        assert_int_equal(id.entropy[1], 0x11);
        /* What becomes network.conf: everything but the transient keys. */
        assert_non_null(strstr(id.conf, "HOSTNAME=clone-1\n"));
        assert_null(strstr(id.conf, "ENTROPY"));
        assert_null(strstr(id.conf, "FROM_MAC"));
        assert_null(strstr(id.conf, "TIME_NS"));
        agent_identity_done(&id);

        assert_int_equal(agent_identity_parse("ADDRESS=172.31.0.7/24\nMAC=02:fc:ac:1f:00:07\n", &id), -EINVAL);
        assert_int_equal(agent_identity_parse("HOSTNAME=a\nADDRESS=172.31.0.7/24\nMAC=02:fc:ac:1f:00:07\n"
                                              "ENTROPY=0g\n",
                                              &id),
                         -EINVAL);
        assert_int_equal(agent_identity_parse("HOSTNAME=a\nADDRESS=172.31.0.7/24\nMAC=02:fc:ac:1f:00:07\n"
                                              "TIME_NS=soon\n",
                                              &id),
                         -EINVAL);
        /* A VM resumed in place: only the clock and the entropy. */
        assert_int_equal(agent_identity_parse(RESUMED, &id), 0);
        assert_true(id.resumed);
        assert_string_equal(id.net.hostname, "");
        assert_int_equal(id.time_ns, 1796612881123456789ULL);
        assert_int_equal(id.n_entropy, 32);
        agent_identity_done(&id);
        assert_int_equal(agent_identity_parse(RESUMED "NEW_HOST_KEYS=1\n", &id), -EINVAL);
        assert_int_equal(agent_identity_parse("RESUMED=2\nTIME_NS=1\n", &id), -EINVAL);
        char big[AGENT_IDENTITY_MAX + 64];
        memset(big, '#', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        assert_int_equal(agent_identity_parse(big, &id), -E2BIG);
}

static char *sh_out(const char *script) {
        char *argv[] = { "sh", "-c", (char *) script, NULL };
        char *out = NULL;
        int r = spawn_run_capture(argv, 30 * USEC_PER_SEC, 64 * 1024, true, &out);
        if (r != 0)
                fail_msg("%s: exit %d: %s", script, r, out ? out : "");
        return out;
}

/* Entries of dir named as write_files()'s temporary files. */
static int temp_files_left(const char *dir) {
        DIR *d = opendir(dir);
        assert_non_null(d);
        int n = 0;
        for (struct dirent *de; (de = readdir(d));)
                n += strncmp(de->d_name, ".#", 2) == 0;
        closedir(d);
        return n;
}

static void test_apply_in_namespaces(void **state) {
        if (geteuid() != 0 || (access("/usr/sbin/ip", X_OK) < 0 && access("/sbin/ip", X_OK) < 0))
                skip();
        assert_int_equal(unshare(CLONE_NEWNET | CLONE_NEWUTS), 0);
        /* A veth NIC: it takes a new MAC only while down, which the agent
         * handles (virtio-net takes it while up). */
        free(sh_out("ip link add eth0 address 02:fc:ac:1f:00:02 type veth peer name peer0 && ip link set lo up && "
                    "ip link set peer0 up && ip link set eth0 up && ip addr add 172.31.0.2/24 dev eth0 && "
                    "ip route add default via 172.31.0.1"));
        char root[] = "/tmp/bai-XXXXXX";
        assert_non_null(mkdtemp(root));
        _cleanup_free_ char *etc = path_join(root, "etc"), *banger = path_join(root, "etc/banger");
        assert_int_equal(mkdir(etc, 0755), 0);
        assert_int_equal(mkdir(banger, 0755), 0);
        {
                _cleanup_close_ int efd = open_dir_nofollow(AT_FDCWD, etc);
                assert_int_equal(write_file_atomic_at(efd, "hostname", "old\n", 4, 0644), 0);
        }

        AgentIdentity id = {};
        assert_int_equal(agent_identity_parse(REQUEST, &id), 0);
        assert_int_equal(agent_identity_apply(root, &id, true), 0);
        agent_identity_done(&id);

        _cleanup_free_ char *link = sh_out("ip -o link show eth0"), *addr = sh_out("ip -o -4 addr show dev eth0"),
                            *route = sh_out("ip route show default"), *host = sh_out("hostname");
        assert_non_null(strstr(link, "02:fc:ac:1f:00:07"));
        assert_non_null(strstr(addr, "172.31.0.7/24"));
        assert_null(strstr(addr, "172.31.0.2/"));
        assert_non_null(strstr(route, "via 172.31.0.1"));
        assert_string_equal(host, "clone-1\n");
        _cleanup_free_ char *conf = NULL, *hostname = NULL, *hosts = NULL;
        _cleanup_close_ int rfd = open_dir_nofollow(AT_FDCWD, root);
        assert_int_equal(read_file_at(rfd, "etc/banger/network.conf", 4096, &conf, NULL), 0);
        assert_int_equal(read_file_at(rfd, "etc/hostname", 4096, &hostname, NULL), 0);
        assert_int_equal(read_file_at(rfd, "etc/hosts", 4096, &hosts, NULL), 0);
        assert_non_null(strstr(conf, "ADDRESS=172.31.0.7/24\n"));
        assert_null(strstr(conf, "ENTROPY"));
        assert_string_equal(hostname, "clone-1\n");
        assert_non_null(strstr(hosts, "127.0.1.1\tclone-1\n"));
        assert_int_equal(temp_files_left(etc) + temp_files_left(banger), 0);

        /* The same identity again (a VM resumed in place): the NIC keeps its
         * address and the files are not written again. */
        struct stat before, after;
        assert_int_equal(fstatat(rfd, "etc/banger/network.conf", &before, 0), 0);
        assert_int_equal(agent_identity_parse(REQUEST, &id), 0);
        assert_int_equal(agent_identity_apply(root, &id, true), 0);
        agent_identity_done(&id);
        assert_int_equal(fstatat(rfd, "etc/banger/network.conf", &after, 0), 0);
        assert_int_equal(before.st_ino, after.st_ino);
        _cleanup_free_ char *addr2 = sh_out("ip -o -4 addr show dev eth0");
        assert_non_null(strstr(addr2, "172.31.0.7/24"));

        /* The light request of a resume: the hostname, the NIC and the files
         * are left as they are, even when they are not the identity's. */
        assert_int_equal(sethostname("other", 5), 0);
        assert_int_equal(agent_identity_parse("RESUMED=1\nTIME_NS=0\nENTROPY=00112233445566778899aabbccddeeff\n", &id),
                         0);
        assert_int_equal(agent_identity_apply(root, &id, true), 0);
        agent_identity_done(&id);
        _cleanup_free_ char *host2 = sh_out("hostname"), *addr3 = sh_out("ip -o -4 addr show dev eth0");
        assert_string_equal(host2, "other\n");
        assert_non_null(strstr(addr3, "172.31.0.7/24"));
        assert_int_equal(fstatat(rfd, "etc/banger/network.conf", &after, 0), 0);
        assert_int_equal(before.st_ino, after.st_ino);
        char *rm[] = { "rm", "-rf", root, NULL };
        assert_int_equal(spawn_run_capture(rm, 30 * USEC_PER_SEC, 0, false, NULL), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_apply_in_namespaces),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
