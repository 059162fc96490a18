/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>

#include "error.h"
#include "log.h"
#include "resolved.h"
#include "string-util.h"

#define RESOLVE1_DEST "org.freedesktop.resolve1"
#define RESOLVE1_PATH "/org/freedesktop/resolve1"
#define RESOLVE1_IFACE "org.freedesktop.resolve1.Manager"
/* sd-bus.h brings its own sd_bus_flush_close_unrefp / sd_bus_message_unrefp. */

bool resolved_is_running(void) {
        struct stat st;
        return fstatat(AT_FDCWD, RESOLVED_VARLINK_SOCKET, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISSOCK(st.st_mode);
}

/* Map "resolved is not there" bus errors to -EOPNOTSUPP, record the rest. */
static int bus_call_error(const char *method, sd_bus_error *e, int r) {
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER))
                return error_setf(-EOPNOTSUPP, "systemd-resolved is not running");
        return error_setf(r, "systemd-resolved %s: %s", method, e->message ? e->message : strerror(-r));
}

static int resolved_open(sd_bus **ret) {
        if (!resolved_is_running())
                return error_setf(-EOPNOTSUPP, "systemd-resolved is not running");
        int r = sd_bus_open_system(ret);
        if (r < 0)
                return error_setf(r == -ENOENT || r == -ECONNREFUSED ? -EOPNOTSUPP : r,
                                  "connecting to the system bus: %s", strerror(-r));
        return 0;
}

static int call(sd_bus *bus, sd_bus_message *m, const char *method) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r = sd_bus_call(bus, m, 0, &e, NULL);
        if (r < 0)
                r = bus_call_error(method, &e, r);
        sd_bus_error_free(&e);
        return r;
}

/* A Manager method whose arguments sd_bus_message_append() can take. */
static int call_method(sd_bus *bus, const char *method, const char *types, ...) {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        va_list ap;
        va_start(ap, types);
        int r = sd_bus_call_methodv(bus, RESOLVE1_DEST, RESOLVE1_PATH, RESOLVE1_IFACE, method, &e, NULL, types, ap);
        va_end(ap);
        if (r < 0)
                r = bus_call_error(method, &e, r);
        sd_bus_error_free(&e);
        return r < 0 ? r : 0;
}

static int set_link_dns(sd_bus *bus, int ifindex, struct in_addr server, uint16_t port) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r = sd_bus_message_new_method_call(bus, &m, RESOLVE1_DEST, RESOLVE1_PATH, RESOLVE1_IFACE, "SetLinkDNSEx");
        if (r >= 0)
                r = sd_bus_message_append(m, "i", (int32_t) ifindex);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "(iayqs)");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'r', "iayqs");
        if (r >= 0)
                r = sd_bus_message_append(m, "i", (int32_t) AF_INET);
        if (r >= 0)
                r = sd_bus_message_append_array(m, 'y', &server.s_addr, sizeof(server.s_addr));
        if (r >= 0)
                r = sd_bus_message_append(m, "qs", port, "");
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        return call(bus, m, "SetLinkDNSEx");
}

int resolved_link_configure(int ifindex, struct in_addr server, uint16_t port) {
        if (ifindex <= 0 || port == 0)
                return -EINVAL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r = resolved_open(&bus);
        if (r < 0)
                return r;
        r = set_link_dns(bus, ifindex, server, port);
        /* route_only = true: "~vm", never a search domain. */
        if (r >= 0)
                r = call_method(bus, "SetLinkDomains", "ia(sb)", (int32_t) ifindex, 1, "vm", 1);
        if (r >= 0)
                r = call_method(bus, "SetLinkDefaultRoute", "ib", (int32_t) ifindex, 0);
        if (r < 0) {
                (void) resolved_link_revert(ifindex);
                return r;
        }
        log_debug("resolved: ~%s on link %d", "vm", ifindex);
        return 0;
}

int resolved_link_revert(int ifindex) {
        if (ifindex <= 0)
                return -EINVAL;
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        int r = resolved_open(&bus);
        if (r < 0)
                return r;
        return call_method(bus, "RevertLink", "i", (int32_t) ifindex);
}
