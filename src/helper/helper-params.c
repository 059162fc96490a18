/* SPDX-License-Identifier: MIT */
/* Strict validation of everything a client sends. Errors name the field and
 * the rule, so a refused request tells the caller exactly what was wrong. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bridge.h"
#include "error.h"
#include "helper.h"
#include "jsonrpc.h"
#include "path-beneath.h"
#include "string-util.h"
#include "tap.h"

static const char *field_type_name(HelperFieldType t) {
        switch (t) {
        case FIELD_STRING:
                return "a string";
        case FIELD_BOOL:
                return "a boolean";
        case FIELD_UINT:
                return "a non-negative integer";
        case FIELD_ARRAY:
                return "an array";
        }
        return "?";
}

/* Embedded NULs would make the C string differ from what was validated. */
static bool json_string_is_clean(json_t *v) {
        return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

static bool field_type_ok(HelperFieldType t, json_t *v) {
        switch (t) {
        case FIELD_STRING:
                return json_string_is_clean(v);
        case FIELD_BOOL:
                return json_is_boolean(v);
        case FIELD_UINT:
                return json_is_integer(v) && json_integer_value(v) >= 0;
        case FIELD_ARRAY:
                return json_is_array(v);
        }
        return false;
}

static const HelperField *field_find(const HelperField *fields, const char *name) {
        for (const HelperField *f = fields; f->name; f++)
                if (streq(f->name, name))
                        return f;
        return NULL;
}

int helper_request_parse(const char *buf, size_t len, json_t **ret) {
        if (len == 0)
                return error_setf(-EINVAL, "empty request: send one JSON object");
        if (json_text_depth(buf, len) > HELPER_MAX_DEPTH)
                return error_setf(-EINVAL, "request nests deeper than %d levels", HELPER_MAX_DEPTH);
        json_error_t e;
        json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &e);
        if (!j) {
                if (strstr(e.text, "end of file expected"))
                        return error_setf(-EINVAL,
                                          "request holds more than one JSON value: one request per connection");
                return error_setf(-EBADMSG, "malformed JSON request: %s (line %d, column %d)", e.text, e.line,
                                  e.column);
        }
        if (!json_is_object(j)) {
                json_decref(j);
                return error_setf(-EINVAL, "request must be a JSON object");
        }
        *ret = j;
        return 0;
}

int params_check(const char *method, json_t *params, const HelperField *fields) {
        const char *key;
        json_t *v;
        char b[48];
        json_object_foreach (params, key, v) {
                const HelperField *f = field_find(fields, key);
                if (!f)
                        return error_setf(-EINVAL, "%s: unknown field '%s'", method, shorten(key, b));
                if (!field_type_ok(f->type, v))
                        return error_setf(-EINVAL, "%s: field '%s' must be %s", method, key, field_type_name(f->type));
        }
        for (const HelperField *f = fields; f->name; f++)
                if (f->required && !json_object_get(params, f->name))
                        return error_setf(-EINVAL, "%s: missing field '%s'", method, f->name);
        return 0;
}

const char *params_string(json_t *params, const char *name) {
        return json_string_value(json_object_get(params, name));
}

const char *shorten(const char *s, char buf[static 48]) {
        size_t i = 0;
        for (; s[i] && i < 40; i++)
                buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
        if (s[i]) {
                memcpy(buf + i, "...", 3);
                i += 3;
        }
        buf[i] = '\0';
        return buf;
}

int check_tap_name(const char *name) {
        char b[48];
        if (!tap_name_is_valid(name))
                return error_setf(-EINVAL,
                                  "invalid TAP name '%s': must be '" TAP_PREFIX "' followed by 1 to %d of [a-z0-9]",
                                  shorten(name, b), TAP_ID_MAX);
        return 0;
}

int check_bridge_name(const Helper *h, const char *name) {
        char b[48];
        if (!bridge_name_is_valid(name))
                return error_setf(-EPERM, "bridge '%s' is not a banger bridge (only br-fc or br-fc-<suffix>)",
                                  shorten(name, b));
        if (!streq(name, h->bridge))
                return error_setf(-EPERM, "bridge '%s' is not the configured bridge %s", name, h->bridge);
        return 0;
}

int check_guest_ip(const Helper *h, const char *s, struct in_addr *ret) {
        char b[48], net[IPV4_STRLEN];
        struct in_addr a;
        if (ipv4_parse(s, &a) < 0)
                return error_setf(-EINVAL, "'%s' is not an IPv4 address (dotted quad)", shorten(s, b));
        if (!ipv4_subnet_contains_host(&h->subnet, a))
                return error_setf(-EPERM, "address %s is not a host address inside the VM network %s/%u", s,
                                  ipv4_format(h->subnet.network, net), h->subnet.prefixlen);
        if (a.s_addr == h->bridge_ip.s_addr)
                return error_setf(-EPERM, "address %s is the bridge's own address", s);
        *ret = a;
        return 0;
}

int check_state_path(const char *relpath) {
        char b[48];
        if (relpath[0] == '/')
                return error_setf(-EPERM, "path '%s' is absolute; paths are relative to the state directory",
                                  shorten(relpath, b));
        if (!path_beneath_is_valid(relpath))
                return error_setf(-EPERM,
                                  "path '%s' is not a clean relative path inside the state directory "
                                  "(no '..', '.', empty components or trailing '/')",
                                  shorten(relpath, b));
        return 0;
}

int map_open_error(int r, const char *relpath) {
        char b[48];
        const char *p = shorten(relpath, b);
        switch (r) {
        case -ELOOP:
                return error_setf(-EPERM, "path '%s' is or passes through a symlink; refused", p);
        case -EXDEV:
                /* '..' and absolute paths were refused already: a mount point. */
                return error_setf(-EPERM, "path '%s' crosses a mount point inside the state directory; refused", p);
        case -ENOENT:
                return error_setf(r, "path '%s' does not exist in the state directory", p);
        default:
                return error_setf(r, "cannot open '%s' in the state directory: %s", p, strerror(-r));
        }
}

int open_state_file(const Helper *h, const char *relpath, int flags) {
        int r = check_state_path(relpath);
        if (r < 0)
                return r;
        /* Never into another mount: the owner could mount a FUSE filesystem
         * in its state directory and stall the helper in any lookup there. */
        _cleanup_close_ int pfd = open_beneath_ex(h->state_fd, relpath, O_PATH | O_NOFOLLOW, 0, BENEATH_NO_XDEV);
        if (pfd < 0)
                return map_open_error(pfd, relpath);
        struct stat st;
        if (fstat(pfd, &st) < 0)
                return -errno;
        char b[48];
        /* With O_PATH|O_NOFOLLOW a final symlink is opened as itself. */
        if (S_ISLNK(st.st_mode))
                return map_open_error(-ELOOP, relpath);
        if (!S_ISREG(st.st_mode))
                return error_setf(-EPERM, "path '%s' is not a regular file", shorten(relpath, b));
        if (st.st_uid != h->owner_uid)
                return error_setf(-EPERM, "file '%s' is owned by uid %u, not by the owner (uid %u)",
                                  shorten(relpath, b), (unsigned) st.st_uid, (unsigned) h->owner_uid);
        /* Reopen the very inode we checked; O_PATH cannot be used for I/O.
         * O_NONBLOCK: a lease the owner holds on its file would otherwise
         * block this open for lease-break-time (45 s); it fails instead. */
        char proc[64];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
        _cleanup_close_ int fd = open(proc, flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 && errno == EWOULDBLOCK)
                return error_setf(-EBUSY,
                                  "file '%s' is leased by another process (fcntl F_SETLEASE); release it "
                                  "and retry",
                                  shorten(relpath, b));
        if (fd < 0)
                return error_setf(-errno, "cannot reopen '%s': %s", shorten(relpath, b), strerror(errno));
        if (fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
                return -errno;
        return TAKE_FD(fd);
}

int params_strv(json_t *array, const char *what, int (*check)(const char *), char ***ret) {
        size_t n = json_array_size(array), i;
        if (n > HELPER_MAX_LIST)
                return error_setf(-E2BIG, "%s: more than %d entries", what, HELPER_MAX_LIST);
        _cleanup_strv_free_ char **l = calloc(n + 1, sizeof(char *));
        if (!l)
                return -ENOMEM;
        json_t *v;
        json_array_foreach (array, i, v) {
                const char *s = json_string_value(v);
                if (!json_string_is_clean(v))
                        return error_setf(-EINVAL, "%s: entry %zu must be a string", what, i);
                if (check) {
                        int r = check(s);
                        if (r < 0)
                                return r;
                }
                if (!(l[i] = strdup(s)))
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        return 0;
}
