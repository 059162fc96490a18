/* SPDX-License-Identifier: MIT */
#pragma once

/* libarchive and libcrypto for catalog build, which runs the shared catalog
 * code through the wrappers in catalog-dl.c. 0, or -ENOPKG with the cause
 * recorded (error_setf). */
int catalog_dl_open(void);
