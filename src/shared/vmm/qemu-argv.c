/* SPDX-License-Identifier: MIT */
/* The QEMU command line: a pure function of the VM config and the host plan,
 * so it can be checked against golden files. */
#include "qemu.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "string-util.h"

typedef struct ArgList {
        char **v;
        size_t n;
        size_t alloc;
} ArgList;

static int arg_add(ArgList *a, const char *s) {
        if (a->n + 2 > a->alloc) {
                size_t na = a->alloc ? a->alloc * 2 : 64;
                char **nv = realloc(a->v, na * sizeof(char *));
                if (!nv)
                        return -ENOMEM;
                a->v = nv;
                a->alloc = na;
        }
        a->v[a->n] = strdup(s);
        if (!a->v[a->n])
                return -ENOMEM;
        a->v[++a->n] = NULL;
        return 0;
}

_printf_(2, 3) static int arg_addf(ArgList *a, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;
        va_start(ap, fmt);
        int k = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        int r = arg_add(a, s);
        free(s);
        return r;
}

static int arg_add2(ArgList *a, const char *opt, const char *value) {
        int r = arg_add(a, opt);
        return r < 0 ? r : arg_add(a, value);
}

/* QEMU's option syntax splits on ',' and reads ",," as a literal comma. */
static char *opt_escape(const char *s) {
        size_t extra = 0;
        for (const char *p = s; *p; p++)
                extra += *p == ',';
        char *e = malloc(strlen(s) + extra + 1), *q = e;
        if (!e)
                return NULL;
        for (const char *p = s; *p; p++) {
                *q++ = *p;
                if (*p == ',')
                        *q++ = ',';
        }
        *q = '\0';
        return e;
}

static bool id_is_valid(const char *s) {
        if (!s || !*s || strlen(s) > 32)
                return false;
        return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(s);
}

static bool tap_is_valid(const char *s) {
        /* IFNAMSIZ - 1, and nothing QEMU's option parser would split on. */
        return s && *s && strlen(s) <= 15 &&
               strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == strlen(s);
}

static bool mac_is_valid(const char *s) {
        if (!s || strlen(s) != 17)
                return false;
        for (size_t i = 0; i < 17; i++)
                if (i % 3 == 2 ? s[i] != ':' : !strchr("0123456789abcdefABCDEF", s[i]))
                        return false;
        return true;
}

static bool path_is_usable(const char *s) {
        return s && *s && !strchr(s, '\n');
}

static int validate(const VmmConfig *c, const QemuHostPlan *p) {
        if (!id_is_valid(c->vm_id) || strchr(c->vm_id, '_') || strlen(c->vm_id) > 16)
                return error_setf(-EINVAL, "VM id \"%s\" is not [a-z0-9]{1,16}", c->vm_id ? c->vm_id : "");
        if (!path_is_usable(c->kernel))
                return error_setf(-EINVAL, "QEMU needs a kernel image");
        if (!path_is_usable(c->log_path) || !path_is_usable(p->qmp_socket) || !path_is_usable(p->pidfile))
                return error_setf(-EINVAL, "QEMU needs a log file, a QMP socket and a pidfile path");
        if (!p->vsock && !path_is_usable(p->agent_socket))
                return error_setf(-EINVAL, "QEMU needs an agent socket path without vsock");
        if (p->vsock && c->vsock_cid < 3)
                return error_setf(-EINVAL, "vsock guest CID %u is reserved (must be >= 3)", c->vsock_cid);
        if (c->vcpus < 1 || c->vcpus > 255)
                return error_setf(-EINVAL, "%u vCPUs is outside 1..255", c->vcpus);
        if (c->mem_mib < 64 || c->mem_mib > 1024ULL * 1024)
                return error_setf(-EINVAL, "%llu MiB of memory is outside 64 MiB..1 TiB", c->mem_mib);
        if (c->n_drives > VMM_MAX_DRIVES || c->n_nics > VMM_MAX_NICS)
                return error_setf(-EINVAL, "too many drives or network interfaces");
        for (size_t i = 0; i < c->n_drives; i++)
                if (!id_is_valid(c->drives[i].id) || !path_is_usable(c->drives[i].path))
                        return error_setf(-EINVAL, "drive %zu has a bad id or path", i);
        for (size_t i = 0; i < c->n_nics; i++) {
                const VmmNic *n = &c->nics[i];
                if (!id_is_valid(n->id) || !tap_is_valid(n->tap) || !mac_is_valid(n->mac))
                        return error_setf(-EINVAL, "network interface %zu has a bad id, TAP name or MAC", i);
        }
        return 0;
}

static int add_machine(ArgList *a, const VmmConfig *c, const QemuHostPlan *p) {
        const char *bin = c->binary && *c->binary ? c->binary : QEMU_DEFAULT_BINARY;
        int r = arg_add(a, bin);
        if (r >= 0)
                r = arg_add(a, "-name");
        if (r >= 0)
                r = arg_addf(a, "banger-%s", c->vm_id);
        if (r >= 0)
                r = arg_add2(a, "-machine", "microvm");
        if (r >= 0)
                r = arg_add2(a, "-accel", p->accel == QEMU_ACCEL_KVM ? "kvm" : "tcg");
        if (r >= 0 && p->accel == QEMU_ACCEL_KVM)
                r = arg_add2(a, "-cpu", "host");
        if (r >= 0)
                r = arg_add(a, "-m");
        if (r >= 0)
                r = arg_addf(a, "%lluM", c->mem_mib);
        if (r >= 0)
                r = arg_add(a, "-smp");
        if (r >= 0)
                r = arg_addf(a, "%u", c->vcpus);
        /* Nothing from the host's defaults or config files; no display or
         * HMP monitor; a guest reboot ends QEMU like it ends Firecracker;
         * and the CPUs wait for "cont". */
        const char *fixed[] = { "-nodefaults", "-no-user-config", "-display", "none", "-monitor",
                                "none",        "-no-reboot",      "-S" };
        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(fixed); i++)
                r = arg_add(a, fixed[i]);
        /* A restore: the state arrives later over QMP (migrate-incoming with
         * a file descriptor), so no path or shell command sits in argv. */
        if (r >= 0 && p->incoming)
                r = arg_add2(a, "-incoming", "defer");
        return r;
}

static int add_control(ArgList *a, const VmmConfig *c, const QemuHostPlan *p) {
        _cleanup_free_ char *qmp = opt_escape(p->qmp_socket), *log = opt_escape(c->log_path);
        if (!qmp || !log)
                return -ENOMEM;
        int r = arg_add2(a, "-pidfile", p->pidfile);
        if (r >= 0)
                r = arg_add(a, "-chardev");
        if (r >= 0)
                r = arg_addf(a, "socket,id=qmp,path=%s,server=on,wait=off", qmp);
        if (r >= 0)
                r = arg_add2(a, "-mon", "chardev=qmp,mode=control");
        /* -serial file: wrote nothing with -display none; a file chardev does. */
        if (r >= 0)
                r = arg_add(a, "-chardev");
        if (r >= 0)
                r = arg_addf(a, "file,id=console,path=%s,append=on", log);
        if (r >= 0)
                r = arg_add2(a, "-serial", "chardev:console");
        return r;
}

static int add_boot(ArgList *a, const VmmConfig *c, const QemuHostPlan *p) {
        /* -kernel, -initrd and -append values are taken whole, not option-parsed. */
        int r = arg_add2(a, "-kernel", c->kernel);
        if (r >= 0 && c->initrd && *c->initrd)
                r = arg_add2(a, "-initrd", c->initrd);
        if (r < 0)
                return r;
        /* Under TCG the guest calibrates its TSC against the emulated PIT; on
         * a busy host that fails often (4 boots in 10 here), the kernel marks
         * the TSC unstable and then hangs waiting for timer ticks microvm
         * never delivers. Emulated TSC runs at the host's rate: tell the
         * guest that rate and the matching loops-per-jiffy (HZ=250, Debian's;
         * another HZ only skews udelay), so it calibrates nothing (10 in 10
         * at load average 5). -icount would fix it too, but makes the guest
         * TSC 1 GHz (so these hints would be wrong) and runs all vCPUs on
         * one host thread. tsc=reliable: without it the clocksource
         * watchdog compares the TSC with jiffies, which lose ticks on a busy
         * host, calls the TSC unstable and moves the clock to jiffies, and
         * the guest's clock then falls seconds behind the host's within a
         * minute (a clone's clock, stepped when it takes its identity, too). */
        _cleanup_free_ char *append = NULL;
        const char *base = c->cmdline ? c->cmdline : "";
        if (p->accel == QEMU_ACCEL_TCG && p->tsc_khz > 0) {
                if (asprintf(&append, "%s%stsc_early_khz=%lu lpj=%lu tsc=reliable", base, *base ? " " : "", p->tsc_khz,
                             p->tsc_khz * 4) < 0)
                        return -ENOMEM;
                base = append;
        }
        if (*base)
                r = arg_add2(a, "-append", base);
        return r;
}

static int add_drive(ArgList *a, const VmmDrive *d) {
        _cleanup_free_ char *path = opt_escape(d->path);
        if (!path)
                return -ENOMEM;
        int r = arg_add(a, "-drive");
        if (r >= 0)
                r = arg_addf(a, "id=%s,file=%s,format=raw,if=none%s", d->id, path, d->read_only ? ",readonly=on" : "");
        if (r >= 0)
                r = arg_add(a, "-device");
        if (r >= 0)
                r = arg_addf(a, "virtio-blk-device,drive=%s", d->id);
        return r;
}

static int add_drives(ArgList *a, const VmmConfig *c) {
        int r = 0;
        /* The root disk goes first so the guest names it /dev/vda. */
        for (size_t i = 0; r >= 0 && i < c->n_drives; i++)
                if (c->drives[i].is_root)
                        r = add_drive(a, &c->drives[i]);
        for (size_t i = 0; r >= 0 && i < c->n_drives; i++)
                if (!c->drives[i].is_root)
                        r = add_drive(a, &c->drives[i]);
        return r;
}

static int add_nics(ArgList *a, const VmmConfig *c) {
        int r = 0;
        for (size_t i = 0; r >= 0 && i < c->n_nics; i++) {
                const VmmNic *n = &c->nics[i];
                r = arg_add(a, "-netdev");
                if (r >= 0)
                        r = arg_addf(a, "tap,id=%s,ifname=%s,script=no,downscript=no", n->id, n->tap);
                if (r >= 0)
                        r = arg_add(a, "-device");
                if (r >= 0)
                        r = arg_addf(a, "virtio-net-device,netdev=%s,mac=%s", n->id, n->mac);
        }
        return r;
}

static int add_agent(ArgList *a, const VmmConfig *c, const QemuHostPlan *p) {
        if (p->vsock) {
                int r = arg_add(a, "-device");
                return r < 0 ? r : arg_addf(a, "vhost-vsock-device,guest-cid=%u", c->vsock_cid);
        }
        _cleanup_free_ char *path = opt_escape(p->agent_socket);
        if (!path)
                return -ENOMEM;
        int r = arg_add2(a, "-device", "virtio-serial-device,id=agentbus");
        if (r >= 0)
                r = arg_add(a, "-chardev");
        if (r >= 0)
                r = arg_addf(a, "socket,id=agent,path=%s,server=on,wait=off", path);
        if (r >= 0)
                r = arg_add(a, "-device");
        if (r >= 0)
                r = arg_addf(a, "virtserialport,bus=agentbus.0,chardev=agent,name=%s", QEMU_AGENT_PORT_NAME);
        return r;
}

/* A virtio-rng fed from the host's /dev/urandom. Under TCG the guest kernel
 * has no RDRAND and little interrupt jitter to seed its pool from, so
 * first-boot work that reads random bytes (sshd's host keys, systemd's
 * machine id) could wait for the pool; the guest's virtio_rng module (loaded
 * by Debian's udev from the device's modalias) seeds it at once. */
static int add_rng(ArgList *a) {
        int r = arg_add2(a, "-object", "rng-random,id=rng,filename=/dev/urandom");
        return r < 0 ? r : arg_add2(a, "-device", "virtio-rng-device,rng=rng");
}

int qemu_build_argv(const VmmConfig *c, const QemuHostPlan *plan, char ***ret) {
        if (!c || !plan || !ret)
                return -EINVAL;
        int r = validate(c, plan);
        if (r < 0)
                return r;
        ArgList a = {};
        r = add_machine(&a, c, plan);
        if (r >= 0)
                r = add_control(&a, c, plan);
        if (r >= 0)
                r = add_boot(&a, c, plan);
        if (r >= 0)
                r = add_drives(&a, c);
        if (r >= 0)
                r = add_nics(&a, c);
        if (r >= 0)
                r = add_agent(&a, c, plan);
        if (r >= 0)
                r = add_rng(&a);
        if (r < 0) {
                strv_free(a.v);
                return r;
        }
        *ret = a.v;
        return 0;
}

const char *qemu_state_from_qmp_status(const char *status) {
        static const struct {
                const char *qmp, *state;
        } map[] = {
                { "running", "running" },        { "prelaunch", "not started" }, { "paused", "paused" },
                { "suspended", "paused" },       { "save-vm", "paused" },        { "restore-vm", "paused" },
                { "finish-migrate", "paused" },  { "postmigrate", "paused" },    { "inmigrate", "paused" },
                { "debug", "paused" },           { "shutdown", "shutdown" },     { "guest-panicked", "crashed" },
                { "internal-error", "crashed" }, { "io-error", "crashed" },      { "watchdog", "crashed" },
        };
        for (size_t i = 0; status && i < ELEMENTSOF(map); i++)
                if (streq(status, map[i].qmp))
                        return map[i].state;
        return "unknown";
}
