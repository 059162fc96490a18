/* SPDX-License-Identifier: MIT */
#include "guest-patch.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "ext4-edit.h"
#include "macro.h"
#include "string-util.h"

static bool hostname_is_valid(const char *s) {
        if (!s || strlen(s) > 253)
                return false;
        for (const char *p = s;;) {
                size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
                if (n == 0 || n > 63 || p[0] == '-' || p[n - 1] == '-')
                        return false;
                p += n;
                if (*p == '\0')
                        return true;
                if (*p != '.')
                        return false;
                p++;
        }
}

static bool ip_is_valid(const char *s) {
        unsigned char buf[16];
        return s && (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1);
}

static bool cidr_is_valid(const char *s) {
        const char *slash = s ? strchr(s, '/') : NULL;
        if (!slash || slash - s >= 64)
                return false;
        char ip[64];
        memcpy(ip, s, (size_t) (slash - s));
        ip[slash - s] = '\0';
        int prefix;
        if (safe_atoi(slash + 1, &prefix) < 0 || prefix < 0)
                return false;
        unsigned char buf[16];
        if (inet_pton(AF_INET, ip, buf) == 1)
                return prefix <= 32;
        return inet_pton(AF_INET6, ip, buf) == 1 && prefix <= 128;
}

static bool mac_is_valid(const char *s) {
        if (!s || strlen(s) != 17)
                return false;
        for (int i = 0; i < 17; i++)
                if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char) s[i]))
                        return false;
        return true;
}

static int validate_network(const GuestPatch *p) {
        if (!p->address)
                return 0;
        if (!cidr_is_valid(p->address))
                return error_setf(-EINVAL, "invalid guest address '%s' (want a.b.c.d/nn)", p->address);
        if (p->gateway && !ip_is_valid(p->gateway))
                return error_setf(-EINVAL, "invalid gateway '%s'", p->gateway);
        if (p->mac && !mac_is_valid(p->mac))
                return error_setf(-EINVAL, "invalid MAC address '%s'", p->mac);
        return 0;
}

int guest_patch_validate(const GuestPatch *p) {
        if (!hostname_is_valid(p->hostname))
                return error_setf(-EINVAL, "invalid guest hostname '%s'", p->hostname ?: "(null)");
        int r = validate_network(p);
        if (r < 0)
                return r;
        for (size_t i = 0; i <= GUEST_PATCH_DNS_MAX && p->dns[i]; i++)
                if (i == GUEST_PATCH_DNS_MAX || !ip_is_valid(p->dns[i]))
                        return error_setf(-EINVAL, "invalid or too many DNS servers ('%s')", p->dns[i]);
        if (p->authorized_keys) {
                size_t l = strlen(p->authorized_keys);
                if (l > GUEST_PATCH_KEYS_MAX || !utf8_is_valid_n(p->authorized_keys, l))
                        return error_setf(-EINVAL, "authorized_keys is too large or not UTF-8");
        }
        if (p->n_files > GUEST_PATCH_FILES_MAX)
                return error_setf(-E2BIG, "too many guest file copies (%zu)", p->n_files);
        for (size_t i = 0; i < p->n_files; i++)
                if (!ext4_guest_path_is_valid(p->files[i].guest_path) || p->files[i].src_fd < 0)
                        return error_setf(-EINVAL, "invalid guest file copy '%s'", p->files[i].guest_path ?: "(null)");
        return 0;
}

/* open_memstream with the result handed over only on success. */
static int finish_stream(FILE *f, char **buf, char **ret) {
        bool bad = ferror(f);
        if (fclose(f) != 0 || bad) {
                free(*buf);
                return -ENOMEM;
        }
        *ret = *buf;
        return 0;
}

int guest_patch_format_hosts(const GuestPatch *p, char **ret) {
        char *buf = NULL;
        size_t len;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        fprintf(f, "127.0.0.1\tlocalhost\n127.0.1.1\t%s\n", p->hostname);
        fputs("::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n", f);
        return finish_stream(f, &buf, ret);
}

int guest_patch_format_network(const GuestPatch *p, char **ret) {
        char *buf = NULL;
        size_t len;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        fputs("# Written by banger before boot; read by the guest agent. Format: docs/guest-config.md\n", f);
        fprintf(f, "HOSTNAME=%s\nADDRESS=%s\n", p->hostname, p->address);
        if (p->gateway)
                fprintf(f, "GATEWAY=%s\n", p->gateway);
        if (p->mac)
                fprintf(f, "MAC=%s\n", p->mac);
        if (p->dns[0]) {
                fputs("DNS=", f);
                for (size_t i = 0; p->dns[i]; i++)
                        fprintf(f, "%s%s", i ? " " : "", p->dns[i]);
                fputc('\n', f);
        }
        return finish_stream(f, &buf, ret);
}

int guest_patch_format_resolv(const GuestPatch *p, char **ret) {
        char *buf = NULL;
        size_t len;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return -ENOMEM;
        fputs("# Written by banger\n", f);
        for (size_t i = 0; p->dns[i]; i++)
                fprintf(f, "nameserver %s\n", p->dns[i]);
        return finish_stream(f, &buf, ret);
}

typedef int (*Formatter)(const GuestPatch *p, char **ret);

static int write_generated(Ext4Image *img, const GuestPatch *p, Formatter fmt, const char *path) {
        _cleanup_free_ char *text = NULL;
        int r = fmt(p, &text);
        if (r < 0)
                return r;
        return ext4_write_file(img, path, text, strlen(text), 0644, 0, 0);
}

static int write_hostname(Ext4Image *img, const GuestPatch *p) {
        _cleanup_free_ char *text = NULL;
        if (asprintf(&text, "%s\n", p->hostname) < 0)
                return -ENOMEM;
        return ext4_write_file(img, "/etc/hostname", text, strlen(text), 0644, 0, 0);
}

/* sshd's StrictModes rejects keys unless ~/.ssh is 0700 and the file 0600,
 * both owned by root: enforce that even when the image shipped them. */
static int write_authorized_keys(Ext4Image *img, const char *keys) {
        int r = ext4_mkdir_p(img, "/root/.ssh", 0700, 0, 0);
        if (r < 0)
                return r;
        if ((r = ext4_set_attrs(img, "/root/.ssh", 0700, 0, 0)) < 0)
                return r;
        size_t l = strlen(keys);
        _cleanup_free_ char *text = malloc(l + 2);
        if (!text)
                return -ENOMEM;
        memcpy(text, keys, l);
        if (l > 0 && keys[l - 1] != '\n')
                text[l++] = '\n';
        return ext4_write_file(img, "/root/.ssh/authorized_keys", text, l, 0600, 0, 0);
}

static int write_copy(Ext4Image *img, const GuestFileCopy *c) {
        _cleanup_free_ char *dir = strdup(c->guest_path);
        if (!dir)
                return -ENOMEM;
        char *slash = strrchr(dir, '/');
        *slash = '\0';
        if (dir[0] != '\0') {
                int r = ext4_mkdir_p(img, dir, 0755, c->uid, c->gid);
                if (r < 0)
                        return r;
        }
        return ext4_write_file_from_fd(img, c->guest_path, c->src_fd, c->mode & 07777, c->uid, c->gid);
}

static int apply_all(Ext4Image *img, const GuestPatch *p) {
        int r = ext4_mkdir_p(img, "/etc", 0755, 0, 0);
        if (r >= 0)
                r = write_hostname(img, p);
        if (r >= 0)
                r = write_generated(img, p, guest_patch_format_hosts, "/etc/hosts");
        if (r >= 0 && p->address) {
                r = ext4_mkdir_p(img, "/etc/banger", 0755, 0, 0);
                if (r >= 0)
                        r = write_generated(img, p, guest_patch_format_network, "/etc/banger/network.conf");
        }
        if (r >= 0 && p->dns[0])
                r = write_generated(img, p, guest_patch_format_resolv, "/etc/resolv.conf");
        if (r >= 0 && p->authorized_keys)
                r = write_authorized_keys(img, p->authorized_keys);
        for (size_t i = 0; r >= 0 && i < p->n_files; i++)
                r = write_copy(img, &p->files[i]);
        return r;
}

int guest_patch_apply_fd(int image_fd, const GuestPatch *p) {
        int r = guest_patch_validate(p);
        if (r < 0)
                return r;
        _cleanup_ext4_image_ Ext4Image *img = NULL;
        if ((r = ext4_image_open_fd(image_fd, &img)) < 0)
                return r;
        if ((r = apply_all(img, p)) < 0)
                return r;
        return ext4_image_close(TAKE_PTR(img));
}

int guest_patch_apply(const char *image_path, const GuestPatch *p) {
        _cleanup_close_ int fd = open(image_path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return error_setf(-errno, "cannot open image %s: %s", image_path, strerror(errno));
        return guest_patch_apply_fd(fd, p);
}
