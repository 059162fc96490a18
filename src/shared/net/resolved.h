/* SPDX-License-Identifier: MIT */
#pragma once

/* Hook the "vm" zone into systemd-resolved: on the bridge link, banger's DNS
 * responder becomes the link's DNS server with the routing-only domain
 * "~vm" and no default route, so only *.vm queries go there.
 *
 * The server should be 127.0.0.1: resolved sends a per-link server's
 * datagrams through that link, and treats only 127.0.0.1 as host-local
 * (systemd#25397, #23010). The port need not be 53 (SetLinkDNSEx). */

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#define RESOLVED_VARLINK_SOCKET "/run/systemd/resolve/io.systemd.Resolve"

/* Is systemd-resolved running (its varlink socket exists)? */
bool resolved_is_running(void);

/* Configure the link. -EOPNOTSUPP when resolved is not running (the caller
 * logs one line and carries on); other -errno with the D-Bus error text
 * recorded through error_setf(). */
int resolved_link_configure(int ifindex, struct in_addr server, uint16_t port);

/* Drop everything set on the link (RevertLink); -EOPNOTSUPP as above. */
int resolved_link_revert(int ifindex);
