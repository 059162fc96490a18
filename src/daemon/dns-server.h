/* SPDX-License-Identifier: MIT */
#pragma once

/* Answers A queries for <name>.vm from the running and suspended VMs (a
 * lookup of a suspended one resumes it), on a loopback UDP port (config
 * dns_listen, dns_port), on the event loop. */

typedef struct Daemon Daemon;

/* Bind and add the source to the loop (d->dns_source). -errno with
 * error_setf() saying why when the address cannot be used. */
int dns_server_start(Daemon *d);
