/* SPDX-License-Identifier: MIT */
/* Fuzz bangerd-root's reading of a request, as it runs on whatever a client
 * of its socket sends: the request parser, the field table check, and the
 * argument checks every method applies to names, paths, addresses and lists
 * (helper-params.c). Nothing here touches the host. Besides memory errors:
 * what passes a check is what the check promises (a TAP name, a clean
 * relative path, a host address of the VM network other than the bridge's),
 * and the shortened quote in an error is bounded printable ASCII. */
#include <arpa/inet.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "helper.h"
#include "string-util.h"
#include "tap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The default configuration: 172.16.0.0/24 with br-fc on 172.16.0.1 (the
 * addresses are set, in network order, on each run). */
static Helper helper = { .subnet = { .prefixlen = 24 }, .bridge = "br-fc" };

/* What the TAP rule promises, spelled out apart from tap.c. */
static bool is_tap_name(const char *s) {
        size_t p = strlen(TAP_PREFIX), n = strlen(s);
        if (n <= p || n - p > TAP_ID_MAX || n >= IFNAMSIZ || strncmp(s, TAP_PREFIX, p) != 0)
                return false;
        return strspn(s + p, "abcdefghijklmnopqrstuvwxyz0123456789") == n - p;
}

/* Relative, and every component a name: not empty, ".", or "..". */
static bool is_clean_relative(const char *s) {
        if (s[0] == '\0' || s[0] == '/')
                return false;
        for (const char *c = s;;) {
                size_t n = strcspn(c, "/");
                if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
                        return false;
                if (!c[n])
                        return true;
                c += n + 1;
        }
}

static void check_string(const char *s) {
        char b[48];
        const char *q = shorten(s, b);
        if (strlen(q) > 43)
                abort();
        for (; *q; q++)
                if (*q < 0x20 || *q >= 0x7f)
                        abort();
        if (check_tap_name(s) == 0 && !is_tap_name(s))
                abort();
        if (check_state_path(s) == 0 && !is_clean_relative(s))
                abort();
        if (check_bridge_name(&helper, s) == 0 && strcmp(s, helper.bridge) != 0)
                abort();
        struct in_addr a;
        if (check_guest_ip(&helper, s, &a) == 0) {
                uint32_t host = ntohl(a.s_addr);
                /* 172.16.0.2 to 172.16.0.254: not the network, broadcast or bridge. */
                if ((host & 0xffffff00) != 0xac100000 || (host & 0xff) < 2 || (host & 0xff) == 0xff)
                        abort();
        }
}

static void check_list(json_t *array) {
        char **l = NULL;
        if (params_strv(array, "keep", check_tap_name, &l) < 0)
                return;
        size_t n = 0;
        for (; l[n]; n++)
                if (!is_tap_name(l[n]))
                        abort();
        if (n != json_array_size(array))
                abort();
        strv_free(l);
}

static void check_params(json_t *params) {
        static const HelperField fields[] = { { "name", FIELD_STRING, true }, { "path", FIELD_STRING },
                                              { "read_only", FIELD_BOOL },    { "size", FIELD_UINT },
                                              { "keep", FIELD_ARRAY },        {} };
        if (params_check("fuzz", params, fields) < 0)
                return;
        const char *key;
        json_t *v;
        json_object_foreach (params, key, v) {
                if (json_is_string(v) && strlen(json_string_value(v)) != json_string_length(v))
                        abort(); /* a NUL inside passed as a string */
                if (json_is_string(v))
                        check_string(json_string_value(v));
                else if (json_is_array(v))
                        check_list(v);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > HELPER_MAX_REQUEST)
                return 0;
        helper.subnet.network.s_addr = htonl(0xac100000);
        helper.bridge_ip.s_addr = htonl(0xac100001);
        error_clear();
        json_t *req = NULL;
        if (helper_request_parse((const char *) data, size, &req) < 0) {
                if (!error_last_message())
                        abort();
                return 0;
        }
        if (!json_is_object(req))
                abort();
        json_t *params = json_object_get(req, "params");
        if (json_is_object(params))
                check_params(params);
        json_decref(req);
        return 0;
}
