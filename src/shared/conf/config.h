/* SPDX-License-Identifier: MIT */
#pragma once

/* banger's config file, config.toml in the config directory. Every key is
 * optional; unknown keys, wrong types and out-of-range values are errors that
 * name the key and line ("config.toml:12: unknown key 'foo' in
 * [vm_defaults]"), recorded with error_setf() and returned as -EINVAL
 * (-EBADMSG for TOML syntax). Every key is documented in docs/config.md. */

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define CONFIG_FILE_NAME "config.toml"
#define CONFIG_MAX_FILES 256U

typedef enum ConfigVmm {
        CONFIG_VMM_AUTO, /* Firecracker when /dev/kvm is usable, else QEMU */
        CONFIG_VMM_FIRECRACKER,
        CONFIG_VMM_QEMU,
        _CONFIG_VMM_MAX,
} ConfigVmm;

typedef enum ConfigIdleAction {
        CONFIG_IDLE_STOP,
        CONFIG_IDLE_SUSPEND,
} ConfigIdleAction;
/* The longest idle_timeout (a VM's too): a year, in seconds. */
#define CONFIG_IDLE_TIMEOUT_MAX (366ULL * 24 * 3600)

/* One [[file]] entry: a host file copied into every new guest. */
typedef struct ConfigFile {
        char *host;    /* absolute host path */
        char *guest;   /* absolute, normalised guest path */
        mode_t mode;   /* permission bits, <= 0777 */
        bool mode_set; /* false: keep the host file's permission bits */
} ConfigFile;

/* One [[catalog]] entry: a signed list of image and kernel bundles. */
typedef struct ConfigCatalog {
        char *url;        /* http://, https:// or file:// */
        char *public_key; /* minisign public key ("RW..."); NULL: none */
        bool insecure;    /* trust it without a key (refused otherwise) */
} ConfigCatalog;

#define CONFIG_MAX_CATALOGS 64U

typedef struct BangerConfig {
        int log_level; /* syslog level LOG_ERR..LOG_DEBUG, or -1 when the file sets none */
        ConfigVmm default_vmm;

        char *firecracker_bin; /* absolute path or a name looked up in PATH */
        bool jailer_enabled;
        char *jailer_bin;
        char *jailer_chroot_base;
        uid_t jailer_uid; /* both set (and non-zero) whenever jailer_enabled */
        gid_t jailer_gid;
        char *qemu_bin;

        char *bridge_name;
        char *bridge_ip;
        struct in_addr bridge_addr;
        char *cidr;
        struct in_addr cidr_addr; /* network address, host bits zero */
        unsigned cidr_prefix;
        unsigned tap_pool_size;
        /* Read by the privileged helper: the most TAPs (pooled ones included)
         * and loop devices it keeps for its owner at once. */
        unsigned max_taps;
        unsigned max_loop_devices;
        uint16_t dns_port;
        char *dns_listen; /* IPv4 or IPv6 literal */

        unsigned stop_timeout_sec;
        unsigned boot_timeout_sec;
        /* Warm starts: vm create/run restore a template snapshot of the
         * image's shape when one exists, and make one after a cold boot. */
        bool vm_templates;
        /* snapshot prune drops workspace snapshots that started no VM for
         * this many days; 0: never by age. */
        unsigned workspace_snapshot_max_age_days;
        /* A running VM nobody used (exec, ssh, cp, a forwarded connection,
         * a console follower) for idle_timeout_sec is stopped or suspended;
         * 0: never. A VM's own setting wins. */
        unsigned idle_timeout_sec;
        ConfigIdleAction idle_action;

        char *default_image;
        char *debootstrap_mirror;
        char *debootstrap_suite;
        /* Bytes: the most one image import takes in, each of the sum of an
         * archive's members, of a registry image's blobs, and of the image's
         * files (uncompressed). A multiple of 1 MiB. */
        unsigned long long image_import_max;
        /* Bytes: the most one VM's console takes on disk, console.log and
         * its rotated part together. A multiple of 1 MiB. */
        unsigned long long console_log_max;

        struct {
                unsigned vcpu;
                unsigned long long memory_mib;
                unsigned long long disk_size; /* bytes, a multiple of 1 MiB */
                char *image;                  /* NULL: use default_image */
                bool nat;
        } vm_defaults;

        ConfigFile *files;
        size_t n_files;

        ConfigCatalog *catalogs;
        size_t n_catalogs;
} BangerConfig;

/* Fill *ret with the defaults. */
int config_init(BangerConfig *ret);

/* Parse a config file's contents; filename only prefixes error messages.
 * *ret is written only on success. */
int config_parse_string(const char *data, size_t len, const char *filename, BangerConfig *ret);

/* Load filename (normally CONFIG_FILE_NAME) under config_dirfd without
 * following symlinks. A missing file gives the defaults. The file must be a
 * regular file owned by us or root and not writable by group or others: it
 * names programs the daemon runs. */
int config_load(int config_dirfd, const char *filename, BangerConfig *ret);

void config_done(BangerConfig *c);

/* Set the log level: BANGER_LOG_LEVEL wins over the file's log_level.
 * Returns -EINVAL when BANGER_LOG_LEVEL is set but unparseable. */
int config_apply_log_level(const BangerConfig *c);

/* The image `vm create` uses when none is given. */
const char *config_vm_image(const BangerConfig *c);

const char *config_vmm_to_string(ConfigVmm v);
