/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A fault-injection shim for the tests, loaded with LD_PRELOAD into
 * bmaptool or the bmap-station daemon (its workers are forked, not exec'd,
 * so they inherit it). It makes reads or writes of one chosen device fail,
 * come up short, or stall, past a chosen offset; every other file and
 * device is left alone.
 *
 * BMAP_FAULT_FILE names a control file, read again at every intercepted
 * call (a test may write it while the daemon runs). One rule a line:
 *
 *   DEVICE OP FAULT [after=BYTES] [count=N]
 *
 *   DEVICE  /dev/loopN (matched by st_rdev), MAJOR:MINOR, or
 *           backing=FILE: the loop device whose backing file is FILE, so a
 *           rule can be written before the loop number is known, or
 *           file=FILE: the regular file FILE itself (by device and inode,
 *           as it was when the rule was read: an image read slowly)
 *   OP      read | write: every read or write call (read, pread, preadv...);
 *           pread | pwrite: only the positioned ones (pread, preadv...), so
 *           that a plain read() (libblkid's probe, say) is left alone
 *   FAULT   an errno name (EIO, ENOSPC, ENXIO, ENODEV, ENOMEDIUM): the call
 *           fails with it and transfers nothing;
 *           short=N: at most N bytes are transferred (short=0: none, the
 *           call returns 0);
 *           delay=MS: the call sleeps MS milliseconds, then runs normally
 *   after=  only calls whose byte range reaches past BYTES (K/M/G suffixes)
 *   count=  at most N faults from this rule per process (default: no limit)
 *
 * Lines starting with # are comments. BMAP_FAULT_LOG, when set, names a
 * file that gets one line per injected fault:
 *   PID OP DEV OFFSET LENGTH FAULT
 * which the tests count.
 *
 * Safe in a multi-threaded process and across fork(): no malloc, no stdio,
 * no locks; each call parses the control file into its own stack; the only
 * shared state is the per-rule fault counter, an atomic.
 */
#undef _FILE_OFFSET_BITS /* this file defines pread and pread64 both */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_RULES 16
#define MAX_IOV 64

enum op { OP_READ, OP_WRITE };
enum fault { F_ERRNO, F_SHORT, F_DELAY };

struct rule {
	dev_t dev;
	bool by_file;
	ino_t ino;
	bool by_backing;
	char backing[256];
	enum op op;
	bool positioned_only;
	enum fault fault;
	int err;
	uint64_t arg; /* short: max bytes; delay: milliseconds */
	uint64_t after;
	uint64_t count;
};

/* Faults injected so far, per rule line, in this process. */
static atomic_uint_fast64_t injected[MAX_RULES];

static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pread)(int, void *, size_t, off_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pread64)(int, void *, size_t, off64_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static ssize_t (*real_preadv64)(int, const struct iovec *, int, off64_t);
static ssize_t (*real_pwritev64)(int, const struct iovec *, int, off64_t);

__attribute__((constructor)) static void fault_init(void)
{
	real_read = dlsym(RTLD_NEXT, "read");
	real_write = dlsym(RTLD_NEXT, "write");
	real_pread = dlsym(RTLD_NEXT, "pread");
	real_pwrite = dlsym(RTLD_NEXT, "pwrite");
	real_pread64 = dlsym(RTLD_NEXT, "pread64");
	real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
	real_preadv64 = dlsym(RTLD_NEXT, "preadv64");
	real_pwritev64 = dlsym(RTLD_NEXT, "pwritev64");
}

/* Whole-file read with raw system calls: never through our own read(). */
static ssize_t slurp(const char *path, char *buf, size_t size)
{
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;
	ssize_t n;

	if (fd < 0)
		return -1;
	while (got < size - 1 && (n = syscall(SYS_read, fd, buf + got, size - 1 - got)) > 0)
		got += (size_t)n;
	syscall(SYS_close, fd);
	buf[got] = '\0';
	return (ssize_t)got;
}

static bool parse_bytes(const char *s, uint64_t *ret)
{
	char *end;
	uint64_t v = strtoull(s, &end, 10);

	if (*end == 'K' || *end == 'M' || *end == 'G') {
		v <<= *end == 'K' ? 10 : *end == 'M' ? 20 : 30;
		end++;
	}
	if (end == s || (*end && *end != ' ' && *end != '\t' && *end != '\n'))
		return false;
	*ret = v;
	return true;
}

static int errno_by_name(const char *s)
{
	static const struct {
		const char *name;
		int err;
	} names[] = { { "EIO", EIO },	  { "ENOSPC", ENOSPC }, { "ENXIO", ENXIO },
		      { "ENODEV", ENODEV }, { "ENOMEDIUM", ENOMEDIUM } };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i].name) == 0)
			return names[i].err;
	return 0;
}

/* One rule from one line (tokens separated by blanks); false to skip it. */
static bool parse_rule(char *line, struct rule *r)
{
	char *tok[6], *save = NULL, *s;
	int n = 0;
	unsigned maj, min;
	struct stat st;

	while (n < 6 && (s = strtok_r(n ? NULL : line, " \t", &save)))
		tok[n++] = s;
	if (n < 3 || tok[0][0] == '#')
		return false;
	memset(r, 0, sizeof(*r));
	r->count = UINT64_MAX;
	if (strncmp(tok[0], "file=", 5) == 0) {
		if (stat(tok[0] + 5, &st) < 0 || !S_ISREG(st.st_mode))
			return false;
		r->by_file = true;
		r->dev = st.st_dev;
		r->ino = st.st_ino;
	} else if (strncmp(tok[0], "backing=", 8) == 0) {
		r->by_backing = true;
		snprintf(r->backing, sizeof(r->backing), "%s", tok[0] + 8);
	} else if (sscanf(tok[0], "%u:%u", &maj, &min) == 2) {
		r->dev = makedev(maj, min);
	} else if (stat(tok[0], &st) == 0 && S_ISBLK(st.st_mode)) {
		r->dev = st.st_rdev;
	} else {
		return false;
	}
	if (strcmp(tok[1], "read") == 0 || strcmp(tok[1], "pread") == 0)
		r->op = OP_READ;
	else if (strcmp(tok[1], "write") == 0 || strcmp(tok[1], "pwrite") == 0)
		r->op = OP_WRITE;
	else
		return false;
	r->positioned_only = tok[1][0] == 'p';
	if (strncmp(tok[2], "short=", 6) == 0) {
		r->fault = F_SHORT;
		if (!parse_bytes(tok[2] + 6, &r->arg))
			return false;
	} else if (strncmp(tok[2], "delay=", 6) == 0) {
		r->fault = F_DELAY;
		if (!parse_bytes(tok[2] + 6, &r->arg))
			return false;
	} else if ((r->err = errno_by_name(tok[2]))) {
		r->fault = F_ERRNO;
	} else {
		return false;
	}
	for (int i = 3; i < n; i++) {
		if (strncmp(tok[i], "after=", 6) == 0) {
			if (!parse_bytes(tok[i] + 6, &r->after))
				return false;
		} else if (strncmp(tok[i], "count=", 6) == 0) {
			if (!parse_bytes(tok[i] + 6, &r->count))
				return false;
		} else {
			return false;
		}
	}
	return true;
}

/* Does the block device @dev use @file as its loop backing file? */
static bool backed_by(dev_t dev, const char *file)
{
	char path[96], buf[300];
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/loop/backing_file", major(dev),
		 minor(dev));
	n = slurp(path, buf, sizeof(buf));
	if (n <= 0)
		return false;
	if (buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return strcmp(buf, file) == 0;
}

static void log_fault(enum op op, dev_t dev, uint64_t off, size_t len, const char *what)
{
	const char *path = getenv("BMAP_FAULT_LOG");
	char line[160];
	int fd, n;

	if (!path)
		return;
	n = snprintf(line, sizeof(line), "%d %s %u:%u %llu %zu %s\n", (int)getpid(),
		     op == OP_READ ? "read" : "write", major(dev), minor(dev),
		     (unsigned long long)off, len, what);
	fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
			  0644);
	if (fd < 0)
		return;
	/* One write with O_APPEND: lines of concurrent writers do not mix. */
	syscall(SYS_write, fd, line, (size_t)n);
	syscall(SYS_close, fd);
}

static uint64_t position(int fd)
{
	off_t p = (off_t)syscall(SYS_lseek, fd, 0, SEEK_CUR);

	return p < 0 ? 0 : (uint64_t)p;
}

/*
 * The fault for a call of @op on @fd covering [@off, @off + @len), if any:
 * a copy of the matching rule in @ret. The first matching rule wins.
 */
static bool find_fault(int fd, enum op op, bool positioned, uint64_t *off, size_t len,
		       struct rule *ret, dev_t *ret_dev)
{
	const char *path = getenv("BMAP_FAULT_FILE");
	char buf[4096], *line, *save = NULL;
	struct stat st;
	int idx = 0;

	if (!path || !len)
		return false;
	if (fstat(fd, &st) < 0 || !(S_ISBLK(st.st_mode) || S_ISREG(st.st_mode)))
		return false;
	if (!positioned)
		*off = position(fd);
	if (slurp(path, buf, sizeof(buf)) <= 0)
		return false;
	for (line = strtok_r(buf, "\n", &save); line && idx < MAX_RULES;
	     line = strtok_r(NULL, "\n", &save)) {
		struct rule r;

		if (!parse_rule(line, &r))
			continue;
		idx++;
		if (r.op != op || (r.positioned_only && !positioned) || *off + len <= r.after)
			continue;
		if (r.by_file ? r.dev != st.st_dev || r.ino != st.st_ino
			      : !S_ISBLK(st.st_mode) ||
				    (r.by_backing ? !backed_by(st.st_rdev, r.backing)
						  : r.dev != st.st_rdev))
			continue;
		if (atomic_fetch_add(&injected[idx - 1], 1) >= r.count)
			continue;
		*ret = r;
		*ret_dev = st.st_rdev;
		return true;
	}
	return false;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000),
			       .tv_nsec = (long)(ms % 1000) * 1000000L };

	/* A signal (the worker's SIGTERM) cuts the delay short. */
	nanosleep(&ts, NULL);
}

/*
 * Applies the fault, if any, to a call; returns true when the call is
 * answered here (*ret holds its result), false when it must run with
 * *len (which a short fault may have reduced).
 */
static bool inject(int fd, enum op op, bool positioned, uint64_t off, size_t *len,
		   ssize_t *ret)
{
	int saved = errno;
	struct rule r;
	dev_t dev;
	char what[48];

	if (!find_fault(fd, op, positioned, &off, *len, &r, &dev)) {
		errno = saved;
		return false;
	}
	switch (r.fault) {
	case F_ERRNO:
		snprintf(what, sizeof(what), "errno=%d", r.err);
		log_fault(op, dev, off, *len, what);
		errno = r.err;
		*ret = -1;
		return true;
	case F_SHORT:
		snprintf(what, sizeof(what), "short=%llu", (unsigned long long)r.arg);
		log_fault(op, dev, off, *len, what);
		if (r.arg == 0) {
			*ret = 0;
			errno = saved;
			return true;
		}
		if (*len > r.arg)
			*len = (size_t)r.arg;
		break;
	case F_DELAY:
		snprintf(what, sizeof(what), "delay=%llu", (unsigned long long)r.arg);
		log_fault(op, dev, off, *len, what);
		sleep_ms(r.arg);
		break;
	}
	errno = saved;
	return false;
}

static size_t iov_total(const struct iovec *iov, int n)
{
	size_t t = 0;

	for (int i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

/* A copy of @iov cut to @len bytes, in @out (at most MAX_IOV entries). */
static int iov_cut(const struct iovec *iov, int n, size_t len, struct iovec *out)
{
	int k = 0;

	for (int i = 0; i < n && len && k < MAX_IOV; i++, k++) {
		out[k] = iov[i];
		if (out[k].iov_len > len)
			out[k].iov_len = len;
		len -= out[k].iov_len;
	}
	return k;
}

ssize_t pread(int fd, void *buf, size_t len, off_t off)
{
	ssize_t r;

	if (inject(fd, OP_READ, true, (uint64_t)off, &len, &r))
		return r;
	return real_pread(fd, buf, len, off);
}

ssize_t pread64(int fd, void *buf, size_t len, off64_t off)
{
	ssize_t r;

	if (inject(fd, OP_READ, true, (uint64_t)off, &len, &r))
		return r;
	return real_pread64(fd, buf, len, off);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
	ssize_t r;

	if (inject(fd, OP_WRITE, true, (uint64_t)off, &len, &r))
		return r;
	return real_pwrite(fd, buf, len, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off64_t off)
{
	ssize_t r;

	if (inject(fd, OP_WRITE, true, (uint64_t)off, &len, &r))
		return r;
	return real_pwrite64(fd, buf, len, off);
}

ssize_t read(int fd, void *buf, size_t len)
{
	ssize_t r;

	/* Only block devices are looked at (find_fault): pipes and files pay
	 * one fstat; the position is asked for devices only. */
	if (getenv("BMAP_FAULT_FILE") && inject(fd, OP_READ, false, 0, &len, &r))
		return r;
	return real_read(fd, buf, len);
}

ssize_t write(int fd, const void *buf, size_t len)
{
	ssize_t r;

	if (getenv("BMAP_FAULT_FILE") && inject(fd, OP_WRITE, false, 0, &len, &r))
		return r;
	return real_write(fd, buf, len);
}

/* preadv and preadv64 are one function on 64-bit targets: both go to the 64 one. */
static ssize_t vec(int fd, const struct iovec *iov, int n, uint64_t off, enum op op,
		   ssize_t (*real)(int, const struct iovec *, int, off64_t))
{
	size_t len = iov_total(iov, n), want = len;
	struct iovec cut[MAX_IOV];
	ssize_t r;

	if (inject(fd, op, true, off, &len, &r))
		return r;
	if (len < want)
		return real(fd, cut, iov_cut(iov, n, len, cut), (off64_t)off);
	return real(fd, iov, n, (off64_t)off);
}

ssize_t preadv(int fd, const struct iovec *iov, int n, off_t off)
{
	return vec(fd, iov, n, (uint64_t)off, OP_READ, real_preadv64);
}

ssize_t preadv64(int fd, const struct iovec *iov, int n, off64_t off)
{
	return vec(fd, iov, n, (uint64_t)off, OP_READ, real_preadv64);
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	return vec(fd, iov, n, (uint64_t)off, OP_WRITE, real_pwritev64);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int n, off64_t off)
{
	return vec(fd, iov, n, (uint64_t)off, OP_WRITE, real_pwritev64);
}
