/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "error.h"
#include "fs-util.h"
#include "log.h"
#include "string-util.h"
#include "time-util.h"
#include "toml.h"

_Static_assert(sizeof(uid_t) == sizeof(unsigned) && sizeof(gid_t) == sizeof(unsigned),
               "uid_t/gid_t are parsed as unsigned");

#define MIB (1024ULL * 1024ULL)
#define URL_MAX 2048U
/* The same default as the importer's own (oci-limits.h). */
#define IMAGE_IMPORT_MAX_DEFAULT (32ULL << 30)
#define CONSOLE_LOG_MAX_DEFAULT (8ULL << 20)

/* Where we are, for messages: "config.toml:12: vcpu in [vm_defaults] ...". */
typedef struct Ctx {
        const char *filename;
        const char *section; /* "" for the top level, else " in [vm_defaults]" */
} Ctx;

typedef struct ConfigKey ConfigKey;
struct ConfigKey {
        const char *name;
        int (*parse)(const Ctx *ctx, const ConfigKey *k, const TomlValue *v, void *base);
        size_t offset;
        long long min, max;               /* integers */
        bool (*valid)(const char *s);     /* strings */
        const char *expect;               /* what valid() accepts, for messages */
};

static int config_error(const Ctx *ctx, unsigned line, const char *fmt, ...) _printf_(3, 4);
static int config_error(const Ctx *ctx, unsigned line, const char *fmt, ...) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return error_setf(-EINVAL, "%s:%u: %s", ctx->filename, line, msg);
}

static void *field_of(void *base, const ConfigKey *k) {
        return (char *) base + k->offset;
}

static int expect_type(const Ctx *ctx, const ConfigKey *k, const TomlValue *v, TomlType t) {
        if (v->type == t)
                return 0;
        return config_error(ctx, v->line, "%s%s must be a%s %s, not a%s %s", k->name, ctx->section,
                            t == TOML_INTEGER ? "n" : "", toml_type_to_string(t),
                            v->type == TOML_INTEGER || v->type == TOML_ARRAY ? "n" : "", toml_type_to_string(v->type));
}

static bool has_control_chars(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || *s == 0x7f)
                        return true;
        return false;
}

/* Absolute, no empty, "." or ".." components, no trailing slash: the path
 * means exactly what it says wherever it is resolved. */
static bool path_is_normalized_absolute(const char *s) {
        size_t l = strlen(s);
        if (l < 2 || l >= PATH_MAX || s[0] != '/' || s[l - 1] == '/' || has_control_chars(s))
                return false;
        for (const char *c = s; c; c = strchr(c + 1, '/')) {
                const char *next = c + 1;
                size_t n = strcspn(next, "/");
                if (n == 0 || (n == 1 && next[0] == '.') || (n == 2 && next[0] == '.' && next[1] == '.'))
                        return false;
        }
        return true;
}

/* A relative path would depend on the daemon's working directory. */
static bool program_is_valid(const char *s) {
        if (!*s || strlen(s) >= PATH_MAX || has_control_chars(s))
                return false;
        return strchr(s, '/') ? path_is_normalized_absolute(s) : true;
}

/* The same rule as net/bridge.c (the privileged helper refuses anything
 * else, so a looser check here would keep it from starting); conf sits
 * beside net in the library graph, so the rule is repeated, and
 * test-config checks that both agree. */
static bool bridge_name_is_valid(const char *s) {
        if (streq(s, "br-fc"))
                return true;
        const char *suffix = startswith(s, "br-fc-");
        if (!suffix || !*suffix || strlen(s) > 15)
                return false;
        return strspn(suffix, "abcdefghijklmnopqrstuvwxyz0123456789") == strlen(suffix);
}

static bool ipv4_is_valid(const char *s) {
        struct in_addr a;
        return inet_pton(AF_INET, s, &a) == 1;
}

static bool ip_is_valid(const char *s) {
        struct in6_addr a;
        return inet_pton(AF_INET, s, &a) == 1 || inet_pton(AF_INET6, s, &a) == 1;
}

static int cidr_parse(const char *s, struct in_addr *ret_addr, unsigned *ret_prefix) {
        const char *slash = strchr(s, '/');
        if (!slash || slash - s > (ptrdiff_t) INET_ADDRSTRLEN - 1)
                return -EINVAL;
        char addr[INET_ADDRSTRLEN];
        memcpy(addr, s, (size_t) (slash - s));
        addr[slash - s] = '\0';
        struct in_addr a;
        int prefix;
        if (inet_pton(AF_INET, addr, &a) != 1 || safe_atoi(slash + 1, &prefix) < 0 || slash[1] == '+' ||
            slash[1] == '-' || prefix < 8 || prefix > 30)
                return -EINVAL;
        uint32_t mask = ~UINT32_C(0) << (32 - prefix);
        if (ntohl(a.s_addr) & ~mask)
                return -EINVAL; /* host bits set: almost always a typo */
        *ret_addr = a;
        *ret_prefix = (unsigned) prefix;
        return 0;
}

static bool cidr_is_valid(const char *s) {
        struct in_addr a;
        unsigned p;
        return cidr_parse(s, &a, &p) >= 0;
}

static bool url_is_valid(const char *s) {
        const char *rest = startswith(s, "http://") ?: startswith(s, "https://");
        if (!rest || !*rest || *rest == '/' || strlen(s) > URL_MAX)
                return false;
        for (const char *c = s; *c; c++)
                if ((unsigned char) *c <= ' ' || *c == 0x7f || *c == '"' || *c == '\'' || *c == '\\')
                        return false;
        return true;
}

static bool banger_name_is_valid(const char *s) {
        return name_is_valid(s);
}

static int parse_string(const Ctx *ctx, const ConfigKey *k, const TomlValue *v, void *base) {
        int r = expect_type(ctx, k, v, TOML_STRING);
        if (r < 0)
                return r;
        if (k->valid && !k->valid(v->string))
                return config_error(ctx, v->line, "%s%s must be %s", k->name, ctx->section, k->expect);
        char *s = strdup(v->string);
        if (!s)
                return -ENOMEM;
        char **field = field_of(base, k);
        free(*field);
        *field = s;
        return 0;
}

static int check_range(const Ctx *ctx, const ConfigKey *k, const TomlValue *v) {
        int r = expect_type(ctx, k, v, TOML_INTEGER);
        if (r < 0)
                return r;
        if (v->integer.value < k->min || v->integer.value > k->max)
                return config_error(ctx, v->line, "%s%s must be between %lld and %lld", k->name, ctx->section,
                                    k->min, k->max);
        return 0;
}

static int parse_unsigned(const Ctx *ctx, const ConfigKey *k, const TomlValue *v, void *base) {
        int r = check_range(ctx, k, v);
        if (r < 0)
                return r;
        *(unsigned *) field_of(base, k) = (unsigned) v->integer.value;
        return 0;
}

static int parse_port(const Ctx *ctx, const ConfigKey *k, const TomlValue *v, void *base) {
        int r = check_range(ctx, k, v);
        if (r < 0)
                return r;
        *(uint16_t *) field_of(base, k) = (uint16_t) v->integer.value;
        return 0;
}

static int parse_bool(const Ctx *ctx, const ConfigKey *k, const TomlValue *v, void *base) {
        int r = expect_type(ctx, k, v, TOML_BOOLEAN);
        if (r < 0)
                return r;
        *(bool *) field_of(base, k) = v->boolean;
        return 0;
}

static int parse_log_level(const Ctx *ctx, const ConfigKey *k, const TomlValue *v, void *base) {
        int r = expect_type(ctx, k, v, TOML_STRING);
        if (r < 0)
                return r;
        int level = log_level_from_string(v->string);
        if (level < LOG_ERR)
                return config_error(ctx, v->line,
                                    "log_level must be one of \"error\", \"warning\", \"notice\", \"info\", \"debug\"");
        *(int *) field_of(base, k) = level;
        return 0;
}

static int parse_vmm(const Ctx *ctx, const ConfigKey *k, const TomlValue *v, void *base) {
        int r = expect_type(ctx, k, v, TOML_STRING);
        if (r < 0)
                return r;
        for (ConfigVmm m = 0; m < _CONFIG_VMM_MAX; m++)
                if (streq(v->string, config_vmm_to_string(m))) {
                        *(ConfigVmm *) field_of(base, k) = m;
                        return 0;
                }
        return config_error(ctx, v->line, "default_vmm must be \"auto\", \"firecracker\" or \"qemu\"");
}

/* An integer counts MiB; a string is a size with a unit ("2G", "1536M"). */
static int parse_memory(const Ctx *ctx, const ConfigKey *k, const TomlValue *v, void *base) {
        unsigned long long mib;
        if (v->type == TOML_INTEGER) {
                int r = check_range(ctx, k, v);
                if (r < 0)
                        return r;
                mib = (unsigned long long) v->integer.value;
        } else if (v->type == TOML_STRING) {
                unsigned long long bytes;
                if (parse_size(v->string, &bytes) < 0 || bytes % MIB != 0)
                        return config_error(ctx, v->line,
                                            "%s%s must be a whole number of MiB, like 1024 or \"2G\"", k->name,
                                            ctx->section);
                mib = bytes / MIB;
                if (mib < (unsigned long long) k->min || mib > (unsigned long long) k->max)
                        return config_error(ctx, v->line, "%s%s must be between %lld MiB and %lld MiB", k->name,
                                            ctx->section, k->min, k->max);
        } else
                return expect_type(ctx, k, v, TOML_STRING);
        *(unsigned long long *) field_of(base, k) = mib;
        return 0;
}

/* Strings only: a bare integer would be ambiguous (bytes? MiB?). */
static int parse_disk_size(const Ctx *ctx, const ConfigKey *k, const TomlValue *v, void *base) {
        int r = expect_type(ctx, k, v, TOML_STRING);
        if (r < 0)
                return r;
        unsigned long long bytes;
        if (parse_size(v->string, &bytes) < 0 || bytes % MIB != 0 || bytes == 0)
                return config_error(ctx, v->line, "%s%s must be a size in whole MiB, like \"8G\" or \"512M\"",
                                    k->name, ctx->section);
        if (bytes / MIB > (unsigned long long) k->max)
                return config_error(ctx, v->line, "%s%s must be at most %lld MiB", k->name, ctx->section, k->max);
        *(unsigned long long *) field_of(base, k) = bytes;
        return 0;
}

/* 0o644 or "0644". A decimal integer is refused: `mode = 644` would silently
 * mean 0o1204. */
static int parse_mode(const Ctx *ctx, const ConfigKey *k, const TomlValue *v, void *base) {
        long long mode = -1;
        if (v->type == TOML_INTEGER && v->integer.radix == 8)
                mode = v->integer.value;
        else if (v->type == TOML_STRING) {
                const char *s = v->string;
                size_t l = strlen(s);
                if (l >= 3 && l <= 4 && strspn(s, "01234567") == l)
                        mode = strtoll(s, NULL, 8);
        }
        if (mode < 0 || mode > 0777)
                return config_error(ctx, v->line, "%s%s must be a permission mode up to 0777, written 0o644 or \"0644\"",
                                    k->name, ctx->section);
        ConfigFile *f = base;
        f->mode = (mode_t) mode;
        f->mode_set = true;
        return 0;
}

/* Seconds as a number, or a duration string ("30m", "1h30m", "off"). */
static int parse_duration(const Ctx *ctx, const ConfigKey *k, const TomlValue *v, void *base) {
        uint64_t sec = 0;
        if (v->type == TOML_INTEGER && v->integer.value >= 0 && v->integer.value <= k->max)
                sec = (uint64_t) v->integer.value;
        else if (v->type != TOML_STRING || parse_duration_sec(v->string, (uint64_t) k->max, &sec) < 0)
                return config_error(ctx, v->line,
                                    "%s%s must be a duration like \"30m\", \"1h30m\" or \"off\" (at most %lld s)",
                                    k->name, ctx->section, k->max);
        *(unsigned *) field_of(base, k) = (unsigned) sec;
        return 0;
}

static int parse_idle_action(const Ctx *ctx, const ConfigKey *k, const TomlValue *v, void *base) {
        if (v->type != TOML_STRING || (!streq(v->string, "stop") && !streq(v->string, "suspend")))
                return config_error(ctx, v->line, "%s%s must be \"stop\" or \"suspend\"", k->name, ctx->section);
        *(ConfigIdleAction *) field_of(base, k) = streq(v->string, "suspend") ? CONFIG_IDLE_SUSPEND : CONFIG_IDLE_STOP;
        return 0;
}

#define STR(n, check, what) { #n, parse_string, offsetof(BangerConfig, n), 0, 0, check, what }
#define UINT(n, lo, hi) { #n, parse_unsigned, offsetof(BangerConfig, n), lo, hi, NULL, NULL }
#define BOOL(n) { #n, parse_bool, offsetof(BangerConfig, n), 0, 0, NULL, NULL }

static const ConfigKey top_keys[] = {
        { "log_level", parse_log_level, offsetof(BangerConfig, log_level), 0, 0, NULL, NULL },
        { "default_vmm", parse_vmm, offsetof(BangerConfig, default_vmm), 0, 0, NULL, NULL },
        STR(firecracker_bin, program_is_valid, "an absolute path or a program name"),
        BOOL(jailer_enabled),
        STR(jailer_bin, program_is_valid, "an absolute path or a program name"),
        STR(jailer_chroot_base, path_is_normalized_absolute, "an absolute path"),
        UINT(jailer_uid, 1, 4294967294LL),
        UINT(jailer_gid, 1, 4294967294LL),
        STR(qemu_bin, program_is_valid, "an absolute path or a program name"),
        STR(bridge_name, bridge_name_is_valid, "\"br-fc\" or \"br-fc-\" plus [a-z0-9], at most 15 characters"),
        STR(bridge_ip, ipv4_is_valid, "an IPv4 address"),
        STR(cidr, cidr_is_valid, "an IPv4 network like \"172.16.0.0/24\" (prefix 8..30, host bits zero)"),
        UINT(tap_pool_size, 0, 64),
        UINT(max_taps, 1, 4096),
        UINT(max_loop_devices, 1, 4096),
        { "dns_port", parse_port, offsetof(BangerConfig, dns_port), 1, 65535, NULL, NULL },
        STR(dns_listen, ip_is_valid, "an IPv4 or IPv6 address"),
        UINT(stop_timeout_sec, 1, 600),
        UINT(boot_timeout_sec, 1, 3600),
        BOOL(vm_templates),
        UINT(workspace_snapshot_max_age_days, 0, 36500),
        { "idle_timeout", parse_duration, offsetof(BangerConfig, idle_timeout_sec), 0, CONFIG_IDLE_TIMEOUT_MAX, NULL,
          NULL },
        { "idle_action", parse_idle_action, offsetof(BangerConfig, idle_action), 0, 0, NULL, NULL },
        STR(default_image, banger_name_is_valid, "a name of " NAME_RULE),
        STR(debootstrap_mirror, url_is_valid, "an http:// or https:// URL"),
        STR(debootstrap_suite, banger_name_is_valid, "a suite name like \"bookworm\""),
        { "image_import_max", parse_disk_size, offsetof(BangerConfig, image_import_max), 1, 1024 * 1024, NULL,
          NULL },
        { "console_log_max", parse_disk_size, offsetof(BangerConfig, console_log_max), 1, 1024, NULL, NULL },
};

#define VMD(n) offsetof(__typeof__(((BangerConfig *) NULL)->vm_defaults), n)
static const ConfigKey vm_default_keys[] = {
        { "vcpu", parse_unsigned, VMD(vcpu), 1, 64, NULL, NULL },
        { "memory", parse_memory, VMD(memory_mib), 1, 1024 * 1024, NULL, NULL },
        { "disk_size", parse_disk_size, VMD(disk_size), 1, 64LL * 1024 * 1024, NULL, NULL },
        { "image", parse_string, VMD(image), 0, 0, banger_name_is_valid, "a name of " NAME_RULE },
        { "nat", parse_bool, VMD(nat), 0, 0, NULL, NULL },
};

static const ConfigKey file_keys[] = {
        { "host", parse_string, offsetof(ConfigFile, host), 0, 0, path_is_normalized_absolute, "an absolute path" },
        { "guest", parse_string, offsetof(ConfigFile, guest), 0, 0, path_is_normalized_absolute, "an absolute path" },
        { "mode", parse_mode, offsetof(ConfigFile, mode), 0, 0, NULL, NULL },
};

static bool catalog_url_ok(const char *s) {
        if (strlen(s) > URL_MAX || has_control_chars(s) || strchr(s, ' '))
                return false;
        const char *rest = startswith(s, "http://") ?: startswith(s, "https://") ?: startswith(s, "file:///");
        return rest && *rest;
}

static bool public_key_ok(const char *s) {
        return strlen(s) < 128 && !has_control_chars(s);
}

static const ConfigKey catalog_keys[] = {
        { "url", parse_string, offsetof(ConfigCatalog, url), 0, 0, catalog_url_ok,
          "an http://, https:// or file:/// URL" },
        { "public_key", parse_string, offsetof(ConfigCatalog, public_key), 0, 0, public_key_ok,
          "a minisign public key (RW...)" },
        { "insecure", parse_bool, offsetof(ConfigCatalog, insecure), 0, 0, NULL, NULL },
};

static const ConfigKey *key_lookup(const ConfigKey *keys, size_t n, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (streq(keys[i].name, name))
                        return &keys[i];
        return NULL;
}

/* Every key in table must be one of keys, except those the caller handles
 * itself (skip returns true for them). */
static int parse_section(const Ctx *ctx, const TomlValue *table, const ConfigKey *keys, size_t n_keys, void *base,
                         bool (*skip)(const char *key)) {
        for (size_t i = 0; i < table->table.n; i++) {
                const TomlEntry *e = &table->table.entries[i];
                if (skip && skip(e->key))
                        continue;
                const ConfigKey *k = key_lookup(keys, n_keys, e->key);
                if (!k) {
                        if (e->value->type == TOML_TABLE && !*ctx->section)
                                return config_error(ctx, e->value->line, "unknown table [%s]", e->key);
                        return config_error(ctx, e->value->line, "unknown key '%s'%s", e->key, ctx->section);
                }
                int r = k->parse(ctx, k, e->value, base);
                if (r < 0)
                        return r;
        }
        return 0;
}

static bool is_subsection(const char *key) {
        return streq(key, "vm_defaults") || streq(key, "file") || streq(key, "catalog");
}

static int parse_file_entry(const Ctx *ctx, const TomlValue *t, BangerConfig *c, size_t i) {
        ConfigFile *f = &c->files[i];
        int r = parse_section(ctx, t, file_keys, ELEMENTSOF(file_keys), f, NULL);
        if (r < 0)
                return r;
        if (!f->host || !f->guest)
                return config_error(ctx, t->line, "[[file]] needs both 'host' and 'guest'");
        for (size_t j = 0; j < i; j++)
                if (streq(c->files[j].guest, f->guest))
                        return config_error(ctx, toml_table_get(t, "guest")->line,
                                            "guest path '%s' appears in more than one [[file]]", f->guest);
        return 0;
}

static int parse_files(const Ctx *top, const TomlValue *v, BangerConfig *c) {
        if (!toml_array_is_table_array(v))
                return config_error(top, v->line, "file must be written as [[file]] tables");
        if (v->array.n > CONFIG_MAX_FILES)
                return config_error(top, v->array.items[CONFIG_MAX_FILES]->line, "more than %u [[file]] entries",
                                    CONFIG_MAX_FILES);
        c->files = calloc(v->array.n, sizeof(ConfigFile));
        if (!c->files)
                return -ENOMEM;
        c->n_files = v->array.n;
        const Ctx ctx = { top->filename, " in [[file]]" };
        for (size_t i = 0; i < v->array.n; i++) {
                int r = parse_file_entry(&ctx, v->array.items[i], c, i);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_catalogs(const Ctx *top, const TomlValue *v, BangerConfig *c) {
        if (!toml_array_is_table_array(v))
                return config_error(top, v->line, "catalog must be written as [[catalog]] tables");
        if (v->array.n > CONFIG_MAX_CATALOGS)
                return config_error(top, v->array.items[CONFIG_MAX_CATALOGS]->line,
                                    "more than %u [[catalog]] entries", CONFIG_MAX_CATALOGS);
        c->catalogs = calloc(v->array.n, sizeof(ConfigCatalog));
        if (!c->catalogs)
                return -ENOMEM;
        c->n_catalogs = v->array.n;
        const Ctx ctx = { top->filename, " in [[catalog]]" };
        for (size_t i = 0; i < v->array.n; i++) {
                const TomlValue *t = v->array.items[i];
                int r = parse_section(&ctx, t, catalog_keys, ELEMENTSOF(catalog_keys), &c->catalogs[i], NULL);
                if (r < 0)
                        return r;
                if (!c->catalogs[i].url)
                        return config_error(&ctx, t->line, "[[catalog]] needs a 'url'");
        }
        return 0;
}

static int parse_vm_defaults(const Ctx *top, const TomlValue *v, BangerConfig *c) {
        if (v->type != TOML_TABLE)
                return config_error(top, v->line, "vm_defaults must be a table, not a%s %s",
                                    v->type == TOML_INTEGER || v->type == TOML_ARRAY ? "n" : "",
                                    toml_type_to_string(v->type));
        const Ctx ctx = { top->filename, " in [vm_defaults]" };
        return parse_section(&ctx, v, vm_default_keys, ELEMENTSOF(vm_default_keys), &c->vm_defaults, NULL);
}

static unsigned line_of(const TomlValue *root, const char *key) {
        const TomlValue *v = toml_table_get(root, key);
        return v ? v->line : 1;
}

/* Checks that involve more than one key, once all are known. */
static int check_cross(const Ctx *ctx, const TomlValue *root, BangerConfig *c) {
        int r = cidr_parse(c->cidr, &c->cidr_addr, &c->cidr_prefix);
        if (r < 0)
                return r; /* the default and parse_string() guarantee a valid cidr */
        if (inet_pton(AF_INET, c->bridge_ip, &c->bridge_addr) != 1)
                return -EINVAL;
        uint32_t mask = ~UINT32_C(0) << (32 - c->cidr_prefix);
        uint32_t ip = ntohl(c->bridge_addr.s_addr), net = ntohl(c->cidr_addr.s_addr);
        unsigned line = line_of(root, toml_table_get(root, "bridge_ip") ? "bridge_ip" : "cidr");
        if ((ip & mask) != net)
                return config_error(ctx, line, "bridge_ip %s is outside cidr %s", c->bridge_ip, c->cidr);
        if (ip == net || ip == (net | ~mask))
                return config_error(ctx, line, "bridge_ip %s is the network or broadcast address of cidr %s",
                                    c->bridge_ip, c->cidr);
        if (c->jailer_enabled && (c->jailer_uid == 0 || c->jailer_gid == 0))
                return config_error(ctx, line_of(root, "jailer_enabled"),
                                    "jailer_enabled = true needs jailer_uid and jailer_gid (non-root ids)");
        return 0;
}

static int set_default(char **field, const char *value) {
        *field = strdup(value);
        return *field ? 0 : -ENOMEM;
}

int config_init(BangerConfig *ret) {
        BangerConfig c = {
                .log_level = -1,
                .default_vmm = CONFIG_VMM_AUTO,
                .tap_pool_size = 0,
                .max_taps = 1024,
                .max_loop_devices = 256,
                /* 5353 is mDNS, which avahi holds on many desktops. */
                .dns_port = 5354,
                .stop_timeout_sec = 10,
                /* QEMU without KVM (TCG) needs tens of seconds to boot. */
                .boot_timeout_sec = 120,
                .vm_templates = true,
                .workspace_snapshot_max_age_days = 14,
                .image_import_max = IMAGE_IMPORT_MAX_DEFAULT,
                .console_log_max = CONSOLE_LOG_MAX_DEFAULT,
                .vm_defaults = { .vcpu = 2, .memory_mib = 1024, .disk_size = 8ULL << 30, .nat = false },
        };
        int r = 0;
        r = r ?: set_default(&c.firecracker_bin, "firecracker");
        r = r ?: set_default(&c.jailer_bin, "jailer");
        r = r ?: set_default(&c.jailer_chroot_base, "/srv/jailer");
        r = r ?: set_default(&c.qemu_bin, "qemu-system-x86_64");
        r = r ?: set_default(&c.bridge_name, "br-fc");
        r = r ?: set_default(&c.bridge_ip, "172.16.0.1");
        r = r ?: set_default(&c.cidr, "172.16.0.0/24");
        r = r ?: set_default(&c.dns_listen, "127.0.0.1");
        r = r ?: set_default(&c.default_image, "debian-bookworm");
        r = r ?: set_default(&c.debootstrap_mirror, "http://deb.debian.org/debian");
        r = r ?: set_default(&c.debootstrap_suite, "bookworm");
        if (r >= 0) {
                const Ctx ctx = { "<defaults>", "" };
                r = check_cross(&ctx, NULL, &c);
        }
        if (r < 0) {
                config_done(&c);
                return r;
        }
        *ret = c;
        return 0;
}

int config_parse_string(const char *data, size_t len, const char *filename, BangerConfig *ret) {
        const Ctx ctx = { filename ?: CONFIG_FILE_NAME, "" };
        _cleanup_toml_free_ TomlValue *root = NULL;
        int r = toml_parse(data, len, ctx.filename, &root);
        if (r < 0)
                return r;

        BangerConfig c;
        r = config_init(&c);
        if (r < 0)
                return r;
        r = parse_section(&ctx, root, top_keys, ELEMENTSOF(top_keys), &c, is_subsection);
        const TomlValue *v;
        if (r >= 0 && (v = toml_table_get(root, "vm_defaults")))
                r = parse_vm_defaults(&ctx, v, &c);
        if (r >= 0 && (v = toml_table_get(root, "file")))
                r = parse_files(&ctx, v, &c);
        if (r >= 0 && (v = toml_table_get(root, "catalog")))
                r = parse_catalogs(&ctx, v, &c);
        if (r >= 0)
                r = check_cross(&ctx, root, &c);
        if (r < 0) {
                config_done(&c);
                return r;
        }
        *ret = c;
        return 0;
}

/* A config file that someone else can write could point firecracker_bin at
 * their own program: refuse it, like ssh does for its config. */
static int check_file_owner(const char *filename, const struct stat *st) {
        if (!S_ISREG(st->st_mode))
                return error_setf(-EBADFD, "%s is not a regular file", filename);
        if (st->st_uid != geteuid() && st->st_uid != 0)
                return error_setf(-EPERM, "%s is owned by uid %u, not by us or root", filename,
                                  (unsigned) st->st_uid);
        if (st->st_mode & (S_IWGRP | S_IWOTH))
                return error_setf(-EPERM, "%s is writable by group or others (mode %04o)", filename,
                                  (unsigned) (st->st_mode & 07777));
        return 0;
}

int config_load(int config_dirfd, const char *filename, BangerConfig *ret) {
        _cleanup_close_ int fd = openat(config_dirfd, filename, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                if (errno == ENOENT)
                        return config_init(ret);
                if (errno == ELOOP)
                        return error_setf(-ELOOP, "%s is a symlink, which is not followed", filename);
                return error_setf(-errno, "cannot open %s: %m", filename);
        }
        struct stat st;
        if (fstat(fd, &st) < 0)
                return error_setf(-errno, "cannot stat %s: %m", filename);
        int r = check_file_owner(filename, &st);
        if (r < 0)
                return r;
        if ((unsigned long long) st.st_size > TOML_MAX_SIZE)
                return error_setf(-EFBIG, "%s is larger than %u bytes", filename, TOML_MAX_SIZE);

        _cleanup_free_ char *buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        ssize_t n = loop_read(fd, buf, (size_t) st.st_size);
        if (n < 0)
                return error_setf((int) n, "cannot read %s: %m", filename);
        return config_parse_string(buf, (size_t) n, filename, ret);
}

void config_done(BangerConfig *c) {
        if (!c)
                return;
        char **strings[] = {
                &c->firecracker_bin, &c->jailer_bin,    &c->jailer_chroot_base, &c->qemu_bin,
                &c->bridge_name,     &c->bridge_ip,     &c->cidr,               &c->dns_listen,
                &c->default_image,   &c->debootstrap_mirror, &c->debootstrap_suite, &c->vm_defaults.image,
        };
        for (size_t i = 0; i < ELEMENTSOF(strings); i++) {
                free(*strings[i]);
                *strings[i] = NULL;
        }
        for (size_t i = 0; i < c->n_files; i++) {
                free(c->files[i].host);
                free(c->files[i].guest);
        }
        free(c->files);
        c->files = NULL;
        c->n_files = 0;
        for (size_t i = 0; i < c->n_catalogs; i++) {
                free(c->catalogs[i].url);
                free(c->catalogs[i].public_key);
        }
        free(c->catalogs);
        c->catalogs = NULL;
        c->n_catalogs = 0;
}

int config_apply_log_level(const BangerConfig *c) {
        const char *e = getenv("BANGER_LOG_LEVEL");
        if (e && *e)
                return log_parse_environment();
        if (c->log_level >= 0)
                log_set_max_level(c->log_level);
        return 0;
}

const char *config_vm_image(const BangerConfig *c) {
        return c->vm_defaults.image ?: c->default_image;
}

const char *config_vmm_to_string(ConfigVmm v) {
        static const char *const names[] = {
                [CONFIG_VMM_AUTO] = "auto",
                [CONFIG_VMM_FIRECRACKER] = "firecracker",
                [CONFIG_VMM_QEMU] = "qemu",
        };
        return (unsigned) v < ELEMENTSOF(names) ? names[v] : NULL;
}
