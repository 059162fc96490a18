/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "netlink.h"
#include "string-util.h"

/* Large enough for one dump batch of links with full IFLA_LINKINFO. */
#define NL_BUF_SIZE 32768

struct Netlink {
        struct mnl_socket *sock;
        unsigned portid;
        unsigned seq;
        char buf[NL_BUF_SIZE];
};

int netlink_open(Netlink **ret) {
        _cleanup_free_ Netlink *nl = calloc(1, sizeof(Netlink));
        if (!nl)
                return -ENOMEM;
        nl->sock = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
        if (!nl->sock)
                return negative_errno();
        if (mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
                int r = negative_errno();
                mnl_socket_close(nl->sock);
                return r;
        }
        nl->portid = mnl_socket_get_portid(nl->sock);
        nl->seq = (unsigned) time(NULL);
        *ret = TAKE_PTR(nl);
        return 0;
}

Netlink *netlink_free(Netlink *nl) {
        if (!nl)
                return NULL;
        mnl_socket_close(nl->sock);
        free(nl);
        return NULL;
}

bool ifname_is_valid(const char *name) {
        if (!name)
                return false;
        size_t l = strlen(name);
        if (l == 0 || l >= IFNAMSIZ)
                return false;
        if (streq(name, ".") || streq(name, ".."))
                return false;
        for (const char *p = name; *p; p++) {
                char c = *p;
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                          c == '_' || c == '.';
                if (!ok)
                        return false;
        }
        return true;
}

/* Per-request callback state: the callback records its own failure here
 * because libmnl only passes errno for kernel errors. After a failure the
 * rest of a dump is still read (and ignored) so no stale reply is left on
 * the socket for the next request. */
typedef struct NlCallback {
        int (*fn)(const struct nlmsghdr *nlh, void *userdata);
        void *userdata;
        int error;
} NlCallback;

static int nl_cb_trampoline(const struct nlmsghdr *nlh, void *data) {
        NlCallback *c = data;
        if (c->error < 0)
                return MNL_CB_OK;
        int r = c->fn(nlh, c->userdata);
        if (r < 0)
                c->error = r;
        return MNL_CB_OK;
}

/* Send one request and read replies until the ACK (or NLMSG_DONE for
 * dumps). Returns the kernel's -errno on a NLMSG_ERROR reply. */
static int nl_transact(Netlink *nl, struct nlmsghdr *nlh, int (*fn)(const struct nlmsghdr *, void *), void *userdata) {
        NlCallback c = { .fn = fn, .userdata = userdata };
        unsigned seq = ++nl->seq;
        nlh->nlmsg_seq = seq;
        /* NLM_F_DUMP shares its bits with NLM_F_EXCL/NLM_F_CREATE, so only a
         * GET request can be a dump; everything else asks for an ACK. */
        bool dump = (nlh->nlmsg_type & 3) == 2 && (nlh->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
        if (!dump)
                nlh->nlmsg_flags |= NLM_F_ACK;
        if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
                return negative_errno();
        for (;;) {
                ssize_t n = mnl_socket_recvfrom(nl->sock, nl->buf, sizeof(nl->buf));
                if (n < 0)
                        return negative_errno();
                errno = 0;
                int r = mnl_cb_run(nl->buf, (size_t) n, seq, nl->portid, fn ? nl_cb_trampoline : NULL, &c);
                if (r == MNL_CB_ERROR)
                        return negative_errno();
                if (r == MNL_CB_STOP)
                        return c.error;
        }
}

/* Requests are built in a separate buffer because replies reuse nl->buf. */
typedef struct NlRequest {
        char buf[8192]; /* MNL_SOCKET_BUFFER_SIZE is not a constant */
} NlRequest;

static struct nlmsghdr *nl_put_link_msg(NlRequest *req, uint16_t type, uint16_t flags, int ifindex) {
        memset(req->buf, 0, sizeof(req->buf));
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(req->buf);
        nlh->nlmsg_type = type;
        nlh->nlmsg_flags = NLM_F_REQUEST | flags;
        struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
        ifi->ifi_family = AF_UNSPEC;
        ifi->ifi_index = ifindex;
        return nlh;
}

/* Attributes by type into tb[0..max]; newer kernels' types beyond max are
 * ignored. */
typedef struct NlAttrTable {
        const struct nlattr **tb;
        unsigned max;
} NlAttrTable;

static int attr_table_cb(const struct nlattr *attr, void *data) {
        NlAttrTable *t = data;
        if (mnl_attr_type_valid(attr, t->max) < 0)
                return MNL_CB_OK;
        t->tb[mnl_attr_get_type(attr)] = attr;
        return MNL_CB_OK;
}

/* The kernel sends IFLA_TUN_OWNER only when the TUN has an owner. */
static void nl_parse_tun_info(const struct nlattr *data, NlLink *l) {
        const struct nlattr *tun[IFLA_TUN_MAX + 1] = {};
        if (mnl_attr_parse_nested(data, attr_table_cb, &(NlAttrTable){ tun, IFLA_TUN_MAX }) < 0)
                return;
        if (tun[IFLA_TUN_OWNER] && mnl_attr_validate(tun[IFLA_TUN_OWNER], MNL_TYPE_U32) >= 0) {
                l->tun_has_owner = true;
                l->tun_owner = (uid_t) mnl_attr_get_u32(tun[IFLA_TUN_OWNER]);
        }
}

static int nl_parse_link(const struct nlmsghdr *nlh, NlLink *ret) {
        const struct nlattr *tb[IFLA_MAX + 1] = {};
        const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
        if (nlh->nlmsg_type != RTM_NEWLINK)
                return 0;
        if (mnl_attr_parse(nlh, sizeof(*ifi), attr_table_cb, &(NlAttrTable){ tb, IFLA_MAX }) < 0)
                return -EBADMSG;
        if (!tb[IFLA_IFNAME] || mnl_attr_validate(tb[IFLA_IFNAME], MNL_TYPE_STRING) < 0)
                return -EBADMSG;
        NlLink l = { .ifindex = ifi->ifi_index, .flags = ifi->ifi_flags };
        snprintf(l.name, sizeof(l.name), "%s", mnl_attr_get_str(tb[IFLA_IFNAME]));
        if (tb[IFLA_MASTER] && mnl_attr_validate(tb[IFLA_MASTER], MNL_TYPE_U32) >= 0)
                l.master = (int) mnl_attr_get_u32(tb[IFLA_MASTER]);
        if (tb[IFLA_LINKINFO]) {
                const struct nlattr *info[IFLA_INFO_MAX + 1] = {};
                if (mnl_attr_parse_nested(tb[IFLA_LINKINFO], attr_table_cb, &(NlAttrTable){ info, IFLA_INFO_MAX }) >=
                            0 &&
                    info[IFLA_INFO_KIND] && mnl_attr_validate(info[IFLA_INFO_KIND], MNL_TYPE_STRING) >= 0)
                        snprintf(l.kind, sizeof(l.kind), "%s", mnl_attr_get_str(info[IFLA_INFO_KIND]));
                if (streq(l.kind, "tun") && info[IFLA_INFO_DATA])
                        nl_parse_tun_info(info[IFLA_INFO_DATA], &l);
        }
        *ret = l;
        return 1;
}

static int link_get_cb(const struct nlmsghdr *nlh, void *userdata) {
        return nl_parse_link(nlh, userdata) < 0 ? -EBADMSG : 0;
}

int nl_link_get(Netlink *nl, const char *name, NlLink *ret) {
        if (!ifname_is_valid(name))
                return -EINVAL;
        NlRequest req;
        struct nlmsghdr *nlh = nl_put_link_msg(&req, RTM_GETLINK, 0, 0);
        mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
        NlLink l = {};
        int r = nl_transact(nl, nlh, link_get_cb, &l);
        if (r < 0)
                return r;
        if (l.ifindex <= 0)
                return -ENODEV;
        *ret = l;
        return 0;
}

int nl_link_get_index(Netlink *nl, const char *name, int *ret_ifindex) {
        NlLink l;
        int r = nl_link_get(nl, name, &l);
        if (r < 0)
                return r;
        *ret_ifindex = l.ifindex;
        return 0;
}

typedef struct LinkList {
        NlLink *links;
        size_t n, cap;
} LinkList;

static int link_list_cb(const struct nlmsghdr *nlh, void *userdata) {
        LinkList *ll = userdata;
        NlLink l;
        int r = nl_parse_link(nlh, &l);
        if (r <= 0)
                return r;
        if (ll->n == ll->cap) {
                size_t cap = ll->cap ? ll->cap * 2 : 16;
                NlLink *p = reallocarray(ll->links, cap, sizeof(NlLink));
                if (!p)
                        return -ENOMEM;
                ll->links = p;
                ll->cap = cap;
        }
        ll->links[ll->n++] = l;
        return 0;
}

int nl_link_list(Netlink *nl, NlLink **ret, size_t *ret_n) {
        NlRequest req;
        struct nlmsghdr *nlh = nl_put_link_msg(&req, RTM_GETLINK, NLM_F_DUMP, 0);
        LinkList ll = {};
        int r = nl_transact(nl, nlh, link_list_cb, &ll);
        if (r < 0) {
                free(ll.links);
                return r;
        }
        *ret = ll.links;
        *ret_n = ll.n;
        return 0;
}

int nl_bridge_create(Netlink *nl, const char *name) {
        if (!ifname_is_valid(name))
                return -EINVAL;
        NlRequest req;
        struct nlmsghdr *nlh = nl_put_link_msg(&req, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0);
        mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
        struct nlattr *linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
        mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
        mnl_attr_nest_end(nlh, linkinfo);
        return nl_transact(nl, nlh, NULL, NULL);
}

int nl_link_delete(Netlink *nl, const char *name) {
        if (!ifname_is_valid(name))
                return -EINVAL;
        NlRequest req;
        struct nlmsghdr *nlh = nl_put_link_msg(&req, RTM_DELLINK, 0, 0);
        mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
        return nl_transact(nl, nlh, NULL, NULL);
}

int nl_link_set_up(Netlink *nl, int ifindex, bool up) {
        if (ifindex <= 0)
                return -EINVAL;
        NlRequest req;
        struct nlmsghdr *nlh = nl_put_link_msg(&req, RTM_NEWLINK, 0, ifindex);
        struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
        ifi->ifi_change = IFF_UP;
        ifi->ifi_flags = up ? IFF_UP : 0;
        return nl_transact(nl, nlh, NULL, NULL);
}

int nl_link_set_master(Netlink *nl, int ifindex, int master_ifindex) {
        if (ifindex <= 0 || master_ifindex < 0)
                return -EINVAL;
        NlRequest req;
        struct nlmsghdr *nlh = nl_put_link_msg(&req, RTM_NEWLINK, 0, ifindex);
        mnl_attr_put_u32(nlh, IFLA_MASTER, (uint32_t) master_ifindex);
        return nl_transact(nl, nlh, NULL, NULL);
}

int nl_link_rename(Netlink *nl, int ifindex, const char *new_name) {
        if (ifindex <= 0 || !ifname_is_valid(new_name))
                return -EINVAL;
        NlRequest req;
        struct nlmsghdr *nlh = nl_put_link_msg(&req, RTM_NEWLINK, 0, ifindex);
        mnl_attr_put_strz(nlh, IFLA_IFNAME, new_name);
        return nl_transact(nl, nlh, NULL, NULL);
}

static struct nlmsghdr *nl_put_addr_msg(NlRequest *req, uint16_t type, uint16_t flags, int ifindex,
                                        unsigned prefixlen) {
        memset(req->buf, 0, sizeof(req->buf));
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(req->buf);
        nlh->nlmsg_type = type;
        nlh->nlmsg_flags = NLM_F_REQUEST | flags;
        struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
        ifa->ifa_family = AF_INET;
        ifa->ifa_prefixlen = (uint8_t) prefixlen;
        ifa->ifa_scope = RT_SCOPE_UNIVERSE;
        ifa->ifa_index = (unsigned) ifindex;
        return nlh;
}

int nl_addr_add_ipv4(Netlink *nl, int ifindex, struct in_addr addr, unsigned prefixlen) {
        if (ifindex <= 0 || prefixlen > 32)
                return -EINVAL;
        NlRequest req;
        struct nlmsghdr *nlh = nl_put_addr_msg(&req, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, ifindex, prefixlen);
        mnl_attr_put(nlh, IFA_LOCAL, sizeof(addr), &addr);
        mnl_attr_put(nlh, IFA_ADDRESS, sizeof(addr), &addr);
        if (prefixlen < 31) {
                uint32_t mask = prefixlen == 0 ? 0 : htonl(~((1u << (32 - prefixlen)) - 1));
                struct in_addr brd = { .s_addr = addr.s_addr | ~mask };
                mnl_attr_put(nlh, IFA_BROADCAST, sizeof(brd), &brd);
        }
        return nl_transact(nl, nlh, NULL, NULL);
}

#define NL_MAX_ADDRS 64

typedef struct AddrList {
        int ifindex;
        struct {
                struct in_addr addr;
                unsigned prefixlen;
        } a[NL_MAX_ADDRS];
        size_t n;
} AddrList;

static int addr_list_cb(const struct nlmsghdr *nlh, void *userdata) {
        AddrList *al = userdata;
        const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
        const struct nlattr *tb[IFA_MAX + 1] = {};
        if (nlh->nlmsg_type != RTM_NEWADDR || ifa->ifa_family != AF_INET || (int) ifa->ifa_index != al->ifindex)
                return 0;
        if (mnl_attr_parse(nlh, sizeof(*ifa), attr_table_cb, &(NlAttrTable){ tb, IFA_MAX }) < 0)
                return -EBADMSG;
        const struct nlattr *a = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
        if (!a || mnl_attr_get_payload_len(a) != sizeof(struct in_addr))
                return 0;
        if (al->n == NL_MAX_ADDRS)
                return -E2BIG;
        memcpy(&al->a[al->n].addr, mnl_attr_get_payload(a), sizeof(struct in_addr));
        al->a[al->n].prefixlen = ifa->ifa_prefixlen;
        al->n++;
        return 0;
}

static int nl_addr_list_ipv4(Netlink *nl, int ifindex, AddrList *ret) {
        if (ifindex <= 0)
                return -EINVAL;
        NlRequest req;
        struct nlmsghdr *nlh = nl_put_addr_msg(&req, RTM_GETADDR, NLM_F_DUMP, 0, 0);
        *ret = (AddrList){ .ifindex = ifindex };
        return nl_transact(nl, nlh, addr_list_cb, ret);
}

int nl_addr_has_ipv4(Netlink *nl, int ifindex, struct in_addr addr, unsigned prefixlen) {
        AddrList al;
        int r = nl_addr_list_ipv4(nl, ifindex, &al);
        if (r < 0)
                return r;
        for (size_t i = 0; i < al.n; i++)
                if (al.a[i].addr.s_addr == addr.s_addr && al.a[i].prefixlen == prefixlen)
                        return 1;
        return 0;
}

int nl_addr_del_ipv4(Netlink *nl, int ifindex, struct in_addr addr, unsigned prefixlen) {
        if (ifindex <= 0 || prefixlen > 32)
                return -EINVAL;
        NlRequest req;
        struct nlmsghdr *nlh = nl_put_addr_msg(&req, RTM_DELADDR, 0, ifindex, prefixlen);
        mnl_attr_put(nlh, IFA_LOCAL, sizeof(addr), &addr);
        return nl_transact(nl, nlh, NULL, NULL);
}

int nl_addr_flush_ipv4(Netlink *nl, int ifindex) {
        AddrList al;
        int r = nl_addr_list_ipv4(nl, ifindex, &al);
        if (r < 0)
                return r;
        for (size_t i = 0; i < al.n; i++) {
                r = nl_addr_del_ipv4(nl, ifindex, al.a[i].addr, al.a[i].prefixlen);
                if (r < 0 && r != -EADDRNOTAVAIL)
                        return r;
        }
        return 0;
}

typedef struct DefaultRoute {
        int ifindex;
        uint32_t metric;
} DefaultRoute;

static int default_route_cb(const struct nlmsghdr *nlh, void *userdata) {
        DefaultRoute *d = userdata;
        const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
        const struct nlattr *tb[RTA_MAX + 1] = {};
        if (nlh->nlmsg_type != RTM_NEWROUTE || rtm->rtm_family != AF_INET || rtm->rtm_dst_len != 0 ||
            rtm->rtm_type != RTN_UNICAST)
                return 0;
        if (mnl_attr_parse(nlh, sizeof(*rtm), attr_table_cb, &(NlAttrTable){ tb, RTA_MAX }) < 0)
                return -EBADMSG;
        uint32_t table = tb[RTA_TABLE] ? mnl_attr_get_u32(tb[RTA_TABLE]) : rtm->rtm_table;
        if (table != RT_TABLE_MAIN || !tb[RTA_OIF])
                return 0; /* multipath routes without a single OIF are not supported */
        uint32_t metric = tb[RTA_PRIORITY] ? mnl_attr_get_u32(tb[RTA_PRIORITY]) : 0;
        if (d->ifindex == 0 || metric < d->metric) {
                d->ifindex = (int) mnl_attr_get_u32(tb[RTA_OIF]);
                d->metric = metric;
        }
        return 0;
}

int nl_route_get_default_ifindex(Netlink *nl, int *ret_ifindex) {
        NlRequest req;
        memset(req.buf, 0, sizeof(req.buf));
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(req.buf);
        nlh->nlmsg_type = RTM_GETROUTE;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
        rtm->rtm_family = AF_INET;
        DefaultRoute d = {};
        int r = nl_transact(nl, nlh, default_route_cb, &d);
        if (r < 0)
                return r;
        if (d.ifindex <= 0)
                return -ENETUNREACH;
        *ret_ifindex = d.ifindex;
        return 0;
}

static _Thread_local unsigned fault_countdown;

void net_fault_inject_at(unsigned n) {
        fault_countdown = n;
}

int net_fault_step(void) {
        if (fault_countdown == 0)
                return 0;
        if (--fault_countdown == 0) {
                log_debug("net: injected fault");
                return -EIO;
        }
        return 0;
}
