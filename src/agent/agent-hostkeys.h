/* SPDX-License-Identifier: MIT */
#pragma once

/* Replace the guest's SSH host keys (OpenSSH's /etc/ssh/ssh_host_*_key and
 * .pub, dropbear's /etc/dropbear/dropbear_*_host_key: the types that exist,
 * made by the guest's ssh-keygen or dropbearkey) and /etc/machine-id (when
 * it has one) with new ones; root is "/" except in tests. Each part is
 * tried; returns the last failure (logged) or 0. Run after the random
 * generator was reseeded. */
int agent_new_host_keys(const char *root);
