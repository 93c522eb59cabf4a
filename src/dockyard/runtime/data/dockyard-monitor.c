/* dockyard-monitor: the per-container monitor in C (our conmon / containerd-shim).
 *
 * A drop-in for `python -m dockyard.runtime.monitor` (runtime/monitor.py documents the
 * behaviour; this file does the same with ~1/20 of its memory): the same arguments, the same
 * frames on the same sockets (runtime/monitor_protocol.py), the same json-file log bytes, the
 * same exit.json. It is the child subreaper of the container's init, holds its stdio, appends
 * every output chunk to the json-file log, forwards output to its peers (the daemon over an
 * inherited socketpair, later daemons through <state_dir>/monitor.sock), feeds stdin from
 * them, and at exit writes exit.json, reports the exit code and runs `runc delete`.
 *
 * Lifecycle: run --detach (create and start) -> (output, stdin)* -> exit -> exit.json ->
 * EXITED -> delete -> gone (the connections end).
 * A peer going away never stops the container or the log.
 *
 * Usage: dockyard-monitor --id ID --bundle DIR --state-dir DIR --runc-root DIR [--runc BIN]
 *        [--fd N] [--open-stdin] [--tty] [--detach] [--ephemeral] [--hold] [--exec-process FILE]
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define SOCKET_NAME "monitor.sock"
#define LOG_NAME "container.log"
#define EXIT_NAME "exit.json"
#define PID_NAME "init.pid"
#define MONITOR_PID_NAME "monitor.pid"

/* runtime/monitor_protocol.py */
enum { F_STDOUT = 1, F_STDERR = 2, F_STARTED = 3, F_START_FAILED = 4, F_EXITED = 5,
       F_STDIN = 16, F_STDIN_CLOSE = 17, F_RESIZE = 18, F_GO = 19 };
#define HEADER_SIZE 5
#define MAX_PAYLOAD (1u << 24)

/* Docker's json-file copier emits a partial line when its 16 KiB buffer fills. */
#define MAX_LINE (16 * 1024)
/* While a peer (the daemon) has this much unsent, the container's output is not read: a slow
 * attached client slows the container, as dockerd's 1 MiB BytesPipe blocks its copier, instead
 * of the output piling up in the daemon's memory (issue 10 §4). After init exits the outputs
 * are read regardless (the log gets all of it); a peer that then falls MAX_PEER_BACKLOG behind
 * is dropped rather than stalling the exit. */
#define PEER_HIGH_WATER (1u << 20)
#define MAX_PEER_BACKLOG (64u * 1024 * 1024)
/* After init exits, stray holders of the output pipes get this long before we stop reading. */
#define DRAIN_MS 5000
#define READ_CHUNK 65536

/* ---- growable byte buffers ------------------------------------------------------------ */

struct buf {
    char *p;
    size_t off, len, cap; /* bytes [off, len) are live */
};

static void die(const char *what) {
    fprintf(stderr, "dockyard-monitor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void buf_reserve(struct buf *b, size_t more) {
    if (b->off && b->off == b->len) b->off = b->len = 0;
    if (b->len + more <= b->cap) return;
    if (b->off) { /* compact before growing */
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + more <= b->cap) return;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) die("realloc");
    b->p = p;
    b->cap = cap;
}

static void buf_add(struct buf *b, const void *data, size_t n) {
    if (!n) return;
    buf_reserve(b, n);
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void buf_str(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

static void buf_printf(struct buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) buf_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static size_t buf_size(const struct buf *b) { return b->len - b->off; }
static char *buf_data(const struct buf *b) { return b->p + b->off; }

static void buf_drop(struct buf *b, size_t n) {
    b->off += n;
    if (b->off >= b->len) b->off = b->len = 0;
}

static void buf_free(struct buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* Release memory a burst of output left behind: an idle monitor should stay small. */
static void buf_shrink(struct buf *b) {
    if (buf_size(b) == 0 && b->cap > 64 * 1024) buf_free(b);
}

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* ---- JSON: Python's json.dumps(ensure_ascii=False) with Go's extra escapes ------------ */

/* Append `s` as the inside of a JSON string. Bytes are decoded as UTF-8 with Python's
 * errors="replace" (each maximal invalid subpart becomes U+FFFD), so the log is the same
 * bytes runtime/monitor.py writes. Go's encoding/json (Docker's writer) also escapes <, >, &,
 * U+2028 and U+2029. */
static void json_escape(struct buf *out, const unsigned char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    buf_reserve(out, n + 16);
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            const char *esc = NULL;
            char u[7];
            switch (c) {
            case '"': esc = "\\\""; break;
            case '\\': esc = "\\\\"; break;
            case '\n': esc = "\\n"; break;
            case '\r': esc = "\\r"; break;
            case '\t': esc = "\\t"; break;
            case '\b': esc = "\\b"; break;
            case '\f': esc = "\\f"; break;
            case '<': esc = "\\u003c"; break;
            case '>': esc = "\\u003e"; break;
            case '&': esc = "\\u0026"; break;
            default:
                if (c < 0x20) {
                    memcpy(u, "\\u00", 4);
                    u[4] = hex[c >> 4];
                    u[5] = hex[c & 15];
                    u[6] = 0;
                    esc = u;
                }
            }
            if (esc) buf_str(out, esc);
            else buf_add(out, &c, 1);
            i++;
            continue;
        }
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c == 0xE0) { need = 2; lo = 0xA0; }
        else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) need = 2;
        else if (c == 0xED) { need = 2; hi = 0x9F; }
        else if (c == 0xF0) { need = 3; lo = 0x90; }
        else if (c >= 0xF1 && c <= 0xF3) need = 3;
        else if (c == 0xF4) { need = 3; hi = 0x8F; }
        else {
            buf_str(out, "\xEF\xBF\xBD");
            i++;
            continue;
        }
        size_t k;
        for (k = 1; k <= need; k++) {
            if (i + k >= n) break;
            unsigned char cc = s[i + k];
            unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
            if (cc < l || cc > h) break;
        }
        if (k <= need) { /* invalid or truncated: one replacement for the subpart seen */
            buf_str(out, "\xEF\xBF\xBD");
            i += k;
            continue;
        }
        if (need == 2 && c == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9))
            buf_str(out, s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029");
        else
            buf_add(out, s + i, need + 1);
        i += need + 1;
    }
}

static void json_string(struct buf *out, const char *s) {
    buf_str(out, "\"");
    json_escape(out, (const unsigned char *)s, strlen(s));
    buf_str(out, "\"");
}

/* A small reader for the documents we must look into (runc's log lines, resize payloads,
 * the bundle's config.json): skip values, find a key in an object, decode a string. */
static const char *json_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static const char *json_skip_string(const char *p, const char *end) {
    /* p at the opening quote; returns the byte after the closing quote or NULL */
    for (p++; p < end; p++) {
        if (*p == '\\') p++;
        else if (*p == '"') return p + 1;
    }
    return NULL;
}

static const char *json_skip(const char *p, const char *end, int depth) {
    p = json_ws(p, end);
    if (p >= end || depth > 64) return NULL;
    if (*p == '"') return json_skip_string(p, end);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = json_ws(p + 1, end);
        if (p < end && *p == close) return p + 1;
        for (;;) {
            if (close == '}') {
                if (p >= end || *p != '"' || !(p = json_skip_string(p, end))) return NULL;
                p = json_ws(p, end);
                if (p >= end || *p != ':') return NULL;
                p++;
            }
            if (!(p = json_skip(p, end, depth + 1))) return NULL;
            p = json_ws(p, end);
            if (p < end && *p == ',') { p = json_ws(p + 1, end); continue; }
            if (p < end && *p == close) return p + 1;
            return NULL;
        }
    }
    while (p < end && !strchr(",}] \t\r\n", *p)) p++; /* number, true, false, null */
    return p;
}

/* The value of `key` in the object at `p`, or NULL. */
static const char *json_get(const char *p, const char *end, const char *key) {
    p = json_ws(p, end);
    if (p >= end || *p != '{') return NULL;
    p = json_ws(p + 1, end);
    size_t klen = strlen(key);
    while (p < end && *p == '"') {
        const char *kend = json_skip_string(p, end);
        if (!kend) return NULL;
        int match = (size_t)(kend - p - 2) == klen && memcmp(p + 1, key, klen) == 0;
        p = json_ws(kend, end);
        if (p >= end || *p != ':') return NULL;
        p = json_ws(p + 1, end);
        if (match) return p;
        if (!(p = json_skip(p, end, 0))) return NULL;
        p = json_ws(p, end);
        if (p < end && *p == ',') p = json_ws(p + 1, end);
        else break;
    }
    return NULL;
}

static void utf8_put(struct buf *out, unsigned cp) {
    unsigned char u[4];
    size_t n;
    if (cp < 0x80) { u[0] = (unsigned char)cp; n = 1; }
    else if (cp < 0x800) { u[0] = 0xC0 | (cp >> 6); u[1] = 0x80 | (cp & 63); n = 2; }
    else if (cp < 0x10000) {
        u[0] = 0xE0 | (cp >> 12); u[1] = 0x80 | ((cp >> 6) & 63); u[2] = 0x80 | (cp & 63); n = 3;
    } else {
        u[0] = 0xF0 | (cp >> 18); u[1] = 0x80 | ((cp >> 12) & 63);
        u[2] = 0x80 | ((cp >> 6) & 63); u[3] = 0x80 | (cp & 63); n = 4;
    }
    buf_add(out, u, n);
}

static int hex4(const char *p, const char *end, unsigned *v) {
    if (end - p < 4) return -1;
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p[i], d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -1;
        *v = *v * 16 + (unsigned)d;
    }
    return 0;
}

/* Decode the JSON string at `p` into `out` (NUL-terminated); -1 if it is not a string. */
static int json_decode_string(const char *p, const char *end, struct buf *out) {
    if (!p || p >= end || *p != '"') return -1;
    for (p++; p < end && *p != '"'; p++) {
        if (*p != '\\') { buf_add(out, p, 1); continue; }
        if (++p >= end) return -1;
        switch (*p) {
        case 'n': buf_str(out, "\n"); break;
        case 't': buf_str(out, "\t"); break;
        case 'r': buf_str(out, "\r"); break;
        case 'b': buf_str(out, "\b"); break;
        case 'f': buf_str(out, "\f"); break;
        case 'u': {
            unsigned cp, lo;
            if (hex4(p + 1, end, &cp)) return -1;
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && p + 2 < end && p[1] == '\\' && p[2] == 'u' &&
                !hex4(p + 3, end, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
            utf8_put(out, cp);
            break;
        }
        default: buf_add(out, p, 1);
        }
    }
    buf_add(out, "", 1);
    return 0;
}

static long json_int(const char *p, const char *end, long fallback) {
    if (!p || p >= end) return fallback;
    char tmp[32];
    size_t n = 0;
    while (p < end && n < sizeof tmp - 1 && (isdigit((unsigned char)*p) || *p == '-'))
        tmp[n++] = *p++;
    if (!n) return fallback;
    tmp[n] = 0;
    return strtol(tmp, NULL, 10);
}

static char *read_file(const char *path, size_t *size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct buf b = {0};
    char chunk[8192];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0) buf_add(&b, chunk, (size_t)n);
    close(fd);
    buf_add(&b, "", 1);
    *size = b.len - 1;
    return b.p;
}

/* ---- time ------------------------------------------------------------------------------ */

/* Go's time.RFC3339Nano in UTC: trailing zeros of the fraction trimmed. */
static void rfc3339nano(char out[40]) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    char frac[16];
    snprintf(frac, sizeof frac, "%09ld", ts.tv_nsec);
    int len = 9;
    while (len > 0 && frac[len - 1] == '0') len--;
    if (len) snprintf(out + n, 40 - n, ".%.*sZ", len, frac);
    else snprintf(out + n, 40 - n, "Z");
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- json-file log --------------------------------------------------------------------- */

static int log_fd = -1;
static struct buf pending[3]; /* by frame kind: 1 stdout, 2 stderr */
/* json-file rotation (moby loggerutils.LogFile): -1 = no max-size; files kept incl. current */
static long long log_max_size = -1, log_size;
static int log_max_file = 1, log_none;
static const char *stream_name[3] = {"", "stdout", "stderr"};

static void log_emit(struct buf *out, int kind, const char *line, size_t n) {
    char ts[40];
    buf_str(out, "{\"log\":\"");
    json_escape(out, (const unsigned char *)line, n);
    buf_str(out, "\",\"stream\":\"");
    buf_str(out, stream_name[kind]);
    rfc3339nano(ts);
    buf_str(out, "\",\"time\":\"");
    buf_str(out, ts);
    buf_str(out, "\"}\n");
}

/* Before an entry goes into a file that has reached max-size: .1 … .N-1 shift up, the
 * current file becomes .1 and a new one starts (with max-file 1 the file starts anew). */
static void log_rotate(void) {
    char from[64], to[64];
    close(log_fd);
    if (log_max_file >= 2) {
        for (int i = log_max_file - 1; i > 1; i--) {
            snprintf(from, sizeof from, LOG_NAME ".%d", i - 1);
            snprintf(to, sizeof to, LOG_NAME ".%d", i);
            rename(from, to); /* a missing one is fine */
        }
        rename(LOG_NAME, LOG_NAME ".1");
    } else {
        /* moby truncates in place; a new file (a new inode) reads the same to a client and
         * lets a follower that holds the old one tell that it was rotated. */
        unlink(LOG_NAME);
    }
    log_fd = open(LOG_NAME, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (log_fd < 0) fprintf(stderr, "dockyard-monitor: reopening the log: %s\n", strerror(errno));
    log_size = 0;
}

static void log_put(const char *p, size_t n) {
    /* A full disk loses log lines, never the container: keep going. */
    if (log_fd >= 0 && n && write_all(log_fd, p, n) < 0)
        fprintf(stderr, "dockyard-monitor: writing the log: %s\n", strerror(errno));
    log_size += (long long)n;
}

static void log_flush_out(struct buf *out) {
    const char *p = buf_data(out);
    size_t n = buf_size(out);
    if (log_max_size < 0) {
        log_put(p, n); /* no rotation: the entries in one write */
    } else {
        /* Entry by entry (JSON escapes newlines, so each entry ends at its '\n'). */
        while (n) {
            const char *nl = memchr(p, '\n', n);
            size_t take = nl ? (size_t)(nl + 1 - p) : n;
            if (log_size >= log_max_size) log_rotate();
            log_put(p, take);
            p += take;
            n -= take;
        }
    }
    buf_free(out);
}

/* moby's copier (daemon/logger/copier.go) reads into a 16 KiB buffer and logs each line in
 * it; a buffer that fills without a newline is logged as a partial line. So a line is cut
 * every 16 KiB from its start, whether or not its newline follows in the same read. */
static void log_write(int kind, const char *data, size_t n) {
    if (log_none) return;
    struct buf *pb = &pending[kind];
    struct buf out = {0};
    buf_add(pb, data, n);
    for (;;) {
        const char *p = buf_data(pb);
        size_t avail = buf_size(pb);
        size_t window = avail < MAX_LINE ? avail : MAX_LINE;
        const char *nl = memchr(p, '\n', window);
        size_t take = nl ? (size_t)(nl + 1 - p) : (avail >= MAX_LINE ? MAX_LINE : 0);
        if (!take) break;
        log_emit(&out, kind, p, take);
        buf_drop(pb, take);
    }
    buf_shrink(pb);
    log_flush_out(&out);
}

static void log_close_stream(int kind) {
    struct buf *pb = &pending[kind];
    if (buf_size(pb)) {
        struct buf out = {0};
        log_emit(&out, kind, buf_data(pb), buf_size(pb));
        log_flush_out(&out);
    }
    buf_free(pb);
}

/* ---- options and state ----------------------------------------------------------------- */

static const char *opt_id, *opt_bundle, *opt_state_dir, *opt_runc = "runc", *opt_runc_root;
static const char *opt_exec_process;
static int opt_fd = -1, opt_open_stdin, opt_tty, opt_detach;
/* --ephemeral: the container is removed at its exit (--rm); exit.json is not fsynced. */
static int opt_ephemeral;
/* --hold: wait for the daemon's GO frame before runc runs (monitor_protocol.py GO). */
static int opt_hold;

struct peer {
    int fd;
    struct buf out, in;
};

static struct peer *peers;
static size_t npeers;
static int listener = -1;
static int started;
static pid_t init_pid;
static int exit_code = -1;
static int stdin_w = -1, stdin_closing;
static struct buf stdin_buf;

struct output {
    int fd, kind;
};
static struct output outputs[2];
static size_t noutputs;
static int tty_master = -1;

static void set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* ---- peers ------------------------------------------------------------------------------ */

static void add_peer(int fd) {
    set_nonblock(fd);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    struct peer *p = realloc(peers, (npeers + 1) * sizeof *peers);
    if (!p) die("realloc");
    peers = p;
    memset(&peers[npeers], 0, sizeof *peers);
    peers[npeers++].fd = fd;
}

static void drop_peer(size_t i) {
    close(peers[i].fd);
    buf_free(&peers[i].out);
    buf_free(&peers[i].in);
    peers[i] = peers[--npeers];
}

/* Returns 0 if the peer was dropped. */
static int flush_peer(size_t i) {
    struct peer *p = &peers[i];
    while (buf_size(&p->out)) {
        ssize_t n = send(p->fd, buf_data(&p->out), buf_size(&p->out), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            drop_peer(i); /* EPIPE / ECONNRESET: the daemon went away; the container goes on */
            return 0;
        }
        buf_drop(&p->out, (size_t)n);
    }
    if (buf_size(&p->out) > MAX_PEER_BACKLOG) {
        drop_peer(i);
        return 0;
    }
    buf_shrink(&p->out);
    return 1;
}

static int peers_behind(void) {
    for (size_t i = 0; i < npeers; i++)
        if (buf_size(&peers[i].out) > PEER_HIGH_WATER) return 1;
    return 0;
}

static void frame_header(char h[HEADER_SIZE], int kind, size_t len) {
    h[0] = (char)kind;
    h[1] = (char)(len >> 24);
    h[2] = (char)(len >> 16);
    h[3] = (char)(len >> 8);
    h[4] = (char)len;
}

static void send_frame(size_t i, int kind, const char *payload, size_t len) {
    char h[HEADER_SIZE];
    frame_header(h, kind, len);
    buf_add(&peers[i].out, h, HEADER_SIZE);
    buf_add(&peers[i].out, payload, len);
    flush_peer(i);
}

static void broadcast(int kind, const char *payload, size_t len) {
    /* drop_peer moves the last peer into slot i, so walk from the end */
    for (size_t i = npeers; i-- > 0;) send_frame(i, kind, payload, len);
}

static void send_started(size_t i) {
    char body[64];
    int n = snprintf(body, sizeof body, "{\"pid\": %d}", (int)init_pid);
    send_frame(i, F_STARTED, body, (size_t)n);
}

/* ---- stdin ------------------------------------------------------------------------------- */

static void flush_stdin(void) {
    if (stdin_w < 0) return;
    while (buf_size(&stdin_buf)) {
        ssize_t n = write(stdin_w, buf_data(&stdin_buf), buf_size(&stdin_buf));
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            /* The container closed its stdin; what is left can never be delivered. */
            buf_free(&stdin_buf);
            stdin_closing = 1;
            break;
        }
        buf_drop(&stdin_buf, (size_t)n);
    }
    if (!buf_size(&stdin_buf)) {
        buf_shrink(&stdin_buf);
        if (stdin_closing) {
            close(stdin_w);
            stdin_w = -1;
        }
    }
}

static void resize(const char *payload, size_t len) {
    if (!opt_tty || tty_master < 0) return;
    const char *end = payload + len;
    long h = json_int(json_get(payload, end, "height"), end, -1);
    long w = json_int(json_get(payload, end, "width"), end, -1);
    if (h < 0 || w < 0 || h > 65535 || w > 65535) return;
    struct winsize ws = {.ws_row = (unsigned short)h, .ws_col = (unsigned short)w};
    ioctl(tty_master, TIOCSWINSZ, &ws);
}

static void on_peer(size_t i, short revents) {
    if (revents & POLLOUT) {
        if (!flush_peer(i)) return;
    }
    if (!(revents & (POLLIN | POLLHUP | POLLERR))) return;
    struct peer *p = &peers[i];
    char chunk[READ_CHUNK];
    ssize_t n = recv(p->fd, chunk, sizeof chunk, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        drop_peer(i);
        return;
    }
    buf_add(&p->in, chunk, (size_t)n);
    while (buf_size(&p->in) >= HEADER_SIZE) {
        const unsigned char *h = (const unsigned char *)buf_data(&p->in);
        uint32_t len = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
        if (len > MAX_PAYLOAD) {
            drop_peer(i);
            return;
        }
        if (buf_size(&p->in) < HEADER_SIZE + len) break;
        int kind = h[0];
        const char *payload = buf_data(&p->in) + HEADER_SIZE;
        if (kind == F_STDIN && stdin_w >= 0 && !stdin_closing) {
            buf_add(&stdin_buf, payload, len);
            flush_stdin();
        } else if (kind == F_STDIN_CLOSE) {
            stdin_closing = 1;
            flush_stdin();
        } else if (kind == F_RESIZE) {
            resize(payload, len);
        }
        buf_drop(&p->in, HEADER_SIZE + len);
    }
    buf_shrink(&p->in);
}

static void accept_peer(void) {
    int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    add_peer(fd);
    if (started) send_started(npeers - 1);
}

/* ---- runc --------------------------------------------------------------------------------- */

/* Wait for one child; as the subreaper we may also collect others meanwhile (the container's
 * init once `runc run --detach` exits), so remember the init's status if it passes by. */
static int wait_child(pid_t pid) {
    int status;
    for (;;) {
        pid_t got = waitpid(pid, &status, 0);
        if (got == pid) break;
        if (got < 0 && errno != EINTR) return -1;
    }
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

static void close_from(int lowfd) {
    if (syscall(SYS_close_range, lowfd, ~0U, 0) == 0) return;
    for (int fd = lowfd; fd < 4096; fd++) close(fd);
}

/* fork + exec runc with its stdio on the given fds (-1: /dev/null). */
static pid_t spawn_runc(char **argv, int in, int out, int err) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        int fds[3] = {in < 0 ? null : in, out < 0 ? null : out, err < 0 ? null : err};
        /* dup above 2 first so that no dup2 clobbers a source still needed */
        for (int i = 0; i < 3; i++) fds[i] = fcntl(fds[i], F_DUPFD, 10);
        for (int i = 0; i < 3; i++) dup2(fds[i], i);
        close_from(3);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], argv);
        fprintf(stderr, "dockyard-monitor: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* runc's `--log FILE --log-format json`: a temp file in its state root. */
static char *runc_log_path(void) {
    mkdir(opt_runc_root, 0700);
    char *path;
    if (asprintf(&path, "%s/.log-XXXXXX.json", opt_runc_root) < 0) die("asprintf");
    int fd = mkstemps(path, 5);
    if (fd < 0) die("mkstemps");
    close(fd);
    return path;
}

/* The last error runc wrote to its JSON log, or NULL. */
static char *runc_log_error(const char *path) {
    size_t size;
    char *text = read_file(path, &size);
    if (!text) return NULL;
    char *found = NULL;
    for (char *line = text; line < text + size;) {
        char *nl = memchr(line, '\n', (size_t)(text + size - line));
        char *end = nl ? nl : text + size;
        struct buf level = {0}, msg = {0};
        if (json_decode_string(json_get(line, end, "level"), end, &level) == 0 &&
            (!strcmp(level.p, "error") || !strcmp(level.p, "fatal")) &&
            json_decode_string(json_get(line, end, "msg"), end, &msg) == 0) {
            free(found);
            found = msg.p;
        } else {
            buf_free(&msg);
        }
        buf_free(&level);
        line = end + 1;
    }
    free(text);
    return found;
}

/* runtime/runc.py clean_message + start_exit_code: docker's 127 / 126 / 125. */
static const char *const noise[] = {"runc run failed: ", "runc create failed: ",
                                     "runc start failed: ", "unable to start container process: ",
                                     "unable to create new parent process: "};

static char *clean_message(const char *raw) {
    while (isspace((unsigned char)*raw)) raw++;
    int changed = 1;
    while (changed) {
        changed = 0;
        for (size_t i = 0; i < sizeof noise / sizeof *noise; i++) {
            size_t n = strlen(noise[i]);
            if (!strncmp(raw, noise[i], n)) {
                raw += n;
                changed = 1;
            }
        }
    }
    char *msg = strdup(raw);
    size_t n = strlen(msg);
    while (n && isspace((unsigned char)msg[n - 1])) msg[--n] = 0;
    return msg;
}

static int start_exit_code(const char *msg) {
    if (strcasestr(msg, "executable file not found") || strcasestr(msg, "no such file or directory"))
        return 127;
    if (strcasestr(msg, "permission denied")) return 126;
    return 125;
}

struct start_error {
    char *message;
    int code;
};

static void set_error(struct start_error *e, const char *raw) {
    free(e->message);
    e->message = clean_message(raw);
    e->code = start_exit_code(e->message);
}

/* Accept runc's connection on the console socket and keep the pty master it sends. */
static void take_console(int console_fd) {
    int conn = accept4(console_fd, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0) return;
    char data[4096];
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {data, sizeof data};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    if (recvmsg(conn, &mh, MSG_CMSG_CLOEXEC) >= 0) {
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
            memcpy(&tty_master, CMSG_DATA(c), sizeof(int));
    }
    close(conn);
}

/* Run `runc [--log L] ARGS...`; on failure fill `e` from runc's log. */
static int runc_call(char **args, int in, int out, int err, int console_fd,
                     struct start_error *e) {
    char *log = runc_log_path();
    char *argv[32];
    size_t n = 0;
    argv[n++] = (char *)opt_runc;
    argv[n++] = "--root";
    argv[n++] = (char *)opt_runc_root;
    argv[n++] = "--log";
    argv[n++] = log;
    argv[n++] = "--log-format";
    argv[n++] = "json";
    for (; *args && n < 31; args++) argv[n++] = *args;
    argv[n] = NULL;
    pid_t pid = spawn_runc(argv, in, out, err);
    int code;
    if (pid < 0) {
        code = -1;
    } else if (console_fd < 0) {
        code = wait_child(pid);
    } else {
        /* runc hands the pty master over the console socket while it runs; it may
         * send and exit before we accept, so look once more after it is gone. */
        int status;
        for (;;) {
            if (tty_master < 0) {
                struct pollfd pfd = {.fd = console_fd, .events = POLLIN};
                if (poll(&pfd, 1, 20) > 0) take_console(console_fd);
            }
            pid_t got = waitpid(pid, &status, tty_master < 0 ? WNOHANG : 0);
            if (got == pid) {
                code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
                if (tty_master < 0) {
                    set_nonblock(console_fd);
                    take_console(console_fd);
                }
                break;
            }
            if (got < 0 && errno != EINTR) {
                code = -1;
                break;
            }
        }
    }
    char *error = runc_log_error(log);
    unlink(log);
    free(log);
    if (error) {
        set_error(e, error);
        free(error);
        return -1;
    }
    if (code != 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "runc %s exited with status %d", args[0], code);
        set_error(e, msg);
        return -1;
    }
    return 0;
}

static void runc_delete(void) {
    char *args[] = {"delete", "--force", (char *)opt_id, NULL};
    struct start_error e = {0};
    if (runc_call(args, -1, -1, 2, -1, &e) < 0)
        fprintf(stderr, "runc delete %s: %s\n", opt_id, e.message);
    free(e.message);
}

/* ---- exit.json ----------------------------------------------------------------------------- */

static void write_exit(int code, const char *finished, const char *error, int oom) {
    struct buf b = {0};
    buf_printf(&b, "{\"exit_code\": %d, \"finished_at\": ", code);
    json_string(&b, finished);
    if (error) {
        buf_str(&b, ", \"error\": ");
        json_string(&b, error);
    } else {
        buf_printf(&b, ", \"oom_killed\": %s", oom ? "true" : "false");
    }
    buf_str(&b, "}");
    /* As dockyard/statefile.py writes: a temp file of its own (0600), fsynced, renamed over
     * the target, then the directory fsynced; a reader sees the old file or the new one.
     * An ephemeral container's is not fsynced (durable=False): it is removed with it. */
    char tmp[] = "." EXIT_NAME ".XXXXXX.tmp";
    int fd = mkostemps(tmp, 4, O_CLOEXEC);
    if (fd < 0 || write_all(fd, buf_data(&b), buf_size(&b)) < 0 ||
        (!opt_ephemeral && fsync(fd) < 0) || close(fd) < 0 || rename(tmp, EXIT_NAME) < 0) {
        fprintf(stderr, "dockyard-monitor: writing %s: %s\n", EXIT_NAME, strerror(errno));
        unlink(tmp);
    }
    int dir = opt_ephemeral ? -1 : open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
        fsync(dir);
        close(dir);
    }
    buf_free(&b);
}

/* Whether the kernel's OOM killer acted in the container's memory cgroup. Read before
 * `runc delete` removes the cgroup. */
static int oom_killed(void) {
    char *path;
    if (asprintf(&path, "%s/config.json", opt_bundle) < 0) return 0;
    size_t size;
    char *spec = read_file(path, &size);
    free(path);
    if (!spec) return 0;
    const char *end = spec + size;
    struct buf cg = {0};
    int found = json_decode_string(json_get(json_get(spec, end, "linux"), end, "cgroupsPath"),
                                   end, &cg) == 0;
    free(spec);
    int oom = 0;
    if (found && cg.p[0]) {
        const char *rel = cg.p;
        while (*rel == '/') rel++;
        const char *files[2][2] = {{"/sys/fs/cgroup/memory/", "/memory.oom_control"},
                                   {"/sys/fs/cgroup/", "/memory.events"}};
        for (int i = 0; i < 2 && !oom; i++) {
            char *f;
            if (asprintf(&f, "%s%s%s", files[i][0], rel, files[i][1]) < 0) continue;
            size_t n;
            char *text = read_file(f, &n);
            free(f);
            if (!text) continue;
            for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
                if (!strncmp(line, "oom_kill ", 9)) oom = atol(line + 9) > 0;
            }
            free(text);
            break; /* the first file that exists decides, as in monitor.py */
        }
    }
    buf_free(&cg);
    return oom;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static void final_flush(void) {
    long long deadline = now_ms() + 5000;
    for (;;) {
        size_t busy = 0;
        struct pollfd pfds[64];
        for (size_t i = 0; i < npeers && busy < 64; i++) {
            if (buf_size(&peers[i].out)) {
                pfds[busy].fd = peers[i].fd;
                pfds[busy++].events = POLLOUT;
            }
        }
        if (!busy || now_ms() > deadline) break;
        poll(pfds, busy, 200);
        for (size_t i = npeers; i-- > 0;)
            if (buf_size(&peers[i].out)) flush_peer(i);
    }
    /* The socket goes first: a peer that sees the end must not find it to reconnect to. */
    if (listener >= 0) {
        close(listener);
        listener = -1;
        unlink(SOCKET_NAME);
    }
    while (npeers) drop_peer(npeers - 1);
}

static int fail(struct start_error *e) {
    if (!opt_exec_process) runc_delete();
    char finished[40];
    rfc3339nano(finished);
    write_exit(e->code, finished, e->message, 0);
    struct buf body = {0};
    buf_str(&body, "{\"message\": ");
    json_string(&body, e->message);
    buf_printf(&body, ", \"exit_code\": %d}", e->code);
    broadcast(F_START_FAILED, buf_data(&body), buf_size(&body));
    buf_free(&body);
    final_flush();
    return 1;
}

static void do_listen(void) {
    unlink(SOCKET_NAME);
    listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listener < 0) die("socket");
    /* Relative to our cwd (the state dir) so a long state path cannot overflow sun_path. */
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, SOCKET_NAME);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind " SOCKET_NAME);
    chmod(SOCKET_NAME, 0600);
    if (listen(listener, 8) < 0) die("listen");
}

static int create_pipes(struct start_error *e) {
    int out[2], err[2], in[2] = {-1, -1};
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) die("pipe");
    if (opt_open_stdin) {
        if (pipe2(in, O_CLOEXEC) < 0) die("pipe");
        stdin_w = in[1];
        set_nonblock(stdin_w);
    } else {
        in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    int rc;
    char *state_pid;
    if (asprintf(&state_pid, "%s/%s", opt_state_dir, PID_NAME) < 0) die("asprintf");
    if (opt_exec_process) {
        char *args[] = {"exec", "--detach", "--process", (char *)opt_exec_process, "--pid-file",
                        state_pid, (char *)opt_id, NULL};
        rc = runc_call(args, in[0], out[1], err[1], -1, e);
    } else {
        /* `run --detach`: create and start in one runc process (runtime/runc.py
         * run_detached). */
        char *args[] = {"run",        "--detach", "--bundle",     (char *)opt_bundle,
                        "--pid-file", state_pid,  (char *)opt_id, NULL};
        rc = runc_call(args, in[0], out[1], err[1], -1, e);
    }
    free(state_pid);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    if (rc < 0) {
        close(out[0]);
        close(err[0]);
        return -1;
    }
    outputs[0] = (struct output){out[0], F_STDOUT};
    outputs[1] = (struct output){err[0], F_STDERR};
    noutputs = 2;
    return 0;
}

static int create_tty(struct start_error *e) {
    /* runc dials the console socket by absolute path, and sun_path holds 107 bytes: a state
     * dir under a long root would overflow it, so the socket lives in a short temp dir. */
    char dir[] = "/tmp/dy-console-XXXXXX";
    if (!mkdtemp(dir)) die("mkdtemp");
    char path[64];
    snprintf(path, sizeof path, "%s/console.sock", dir);
    int console = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, path);
    if (console < 0 || bind(console, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(console, 1) < 0)
        die("console socket");
    char *state_pid;
    if (asprintf(&state_pid, "%s/%s", opt_state_dir, PID_NAME) < 0) die("asprintf");
    int rc;
    if (opt_exec_process) {
        char *args[] = {"exec", "--detach", "--process", (char *)opt_exec_process, "--pid-file",
                        state_pid, "--console-socket", path, (char *)opt_id, NULL};
        rc = runc_call(args, -1, -1, -1, console, e);
    } else {
        char *args[] = {"run",        "--detach", "--bundle",         (char *)opt_bundle,
                        "--pid-file", state_pid,  "--console-socket", path,
                        (char *)opt_id, NULL};
        rc = runc_call(args, -1, -1, -1, console, e);
    }
    free(state_pid);
    close(console);
    unlink(path);
    rmdir(dir);
    if (rc < 0) return -1;
    if (tty_master < 0) {
        set_error(e, "runc did not send the container's terminal");
        return -1;
    }
    if (opt_open_stdin) {
        stdin_w = fcntl(tty_master, F_DUPFD_CLOEXEC, 3);
        set_nonblock(stdin_w);
    }
    outputs[0] = (struct output){tty_master, F_STDOUT};
    noutputs = 1;
    return 0;
}

static void reap(void) {
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno == EINTR) continue;
        if (pid <= 0) return;
        if (pid == init_pid) /* Docker reports death by signal N as 128+N */
            exit_code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
    }
}

static void close_output(size_t i) {
    close(outputs[i].fd);
    if (outputs[i].fd == tty_master) tty_master = -1;
    log_close_stream(outputs[i].kind);
    outputs[i] = outputs[--noutputs];
}

/* Returns 0 if the output was closed. */
static int on_output(size_t i) {
    static char chunk[READ_CHUNK];
    ssize_t n = read(outputs[i].fd, chunk, sizeof chunk);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) return 1;
        /* A pty master reads EIO once the last slave fd is closed: that is its EOF. */
        n = 0;
    }
    if (n == 0) {
        close_output(i);
        return 0;
    }
    log_write(outputs[i].kind, chunk, (size_t)n);
    broadcast(outputs[i].kind, chunk, (size_t)n);
    return 1;
}

/* --hold: the first frame from the daemon is GO (empty), or the start was called off: the
 * connection ended (a step before runc failed, or the daemon went away). */
static int await_go(void) {
    if (!npeers) return 0;
    unsigned char h[HEADER_SIZE];
    size_t got = 0;
    while (got < HEADER_SIZE) {
        struct pollfd pfd = {.fd = peers[0].fd, .events = POLLIN};
        if (poll(&pfd, 1, -1) < 0) {
            if (errno == EINTR) continue;
            return 0;
        }
        ssize_t n = read(peers[0].fd, h + got, HEADER_SIZE - got);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) return 0;
        got += (size_t)n;
    }
    return h[0] == F_GO && !h[1] && !h[2] && !h[3] && !h[4];
}

static int run(void) {
    if (opt_hold && !await_go()) {
        unlink(MONITOR_PID_NAME); /* nothing else was made */
        return 0;
    }
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) die("prctl(PR_SET_CHILD_SUBREAPER)");
    if (!log_none) {
        log_fd = open(LOG_NAME, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640); /* rootperms.py */
        if (log_fd < 0) die("open " LOG_NAME);
        struct stat st;
        if (fstat(log_fd, &st) == 0) log_size = (long long)st.st_size;
    }
    do_listen();

    struct start_error e = {0};
    int rc = opt_tty ? create_tty(&e) : create_pipes(&e);
    if (rc < 0) return fail(&e);
    size_t size;
    char *pidtext = read_file(PID_NAME, &size);
    init_pid = pidtext ? (pid_t)atoi(pidtext) : 0;
    free(pidtext);
    if (init_pid <= 0) {
        set_error(&e, "runc wrote no pid file");
        return fail(&e);
    }
    started = 1;
    for (size_t i = npeers; i-- > 0;) send_started(i);
    for (size_t i = 0; i < noutputs; i++) set_nonblock(outputs[i].fd);
    int pidfd = (int)syscall(SYS_pidfd_open, init_pid, 0);

    long long drain_deadline = -1;
    struct pollfd *pfds = NULL;
    size_t pcap = 0;
    while (noutputs || exit_code < 0) {
        if (exit_code >= 0 && drain_deadline < 0) drain_deadline = now_ms() + DRAIN_MS;
        if (drain_deadline >= 0 && now_ms() > drain_deadline) break;
        size_t want = 4 + noutputs + npeers;
        if (want > pcap) {
            pcap = want * 2;
            pfds = realloc(pfds, pcap * sizeof *pfds);
            if (!pfds) die("realloc");
        }
        size_t n = 0;
        pfds[n++] = (struct pollfd){.fd = listener, .events = POLLIN};
        pfds[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        pfds[n++] = (struct pollfd){.fd = buf_size(&stdin_buf) ? stdin_w : -1, .events = POLLOUT};
        size_t out0 = n;
        int hold = exit_code < 0 && peers_behind(); /* poll ignores a negative fd */
        for (size_t i = 0; i < noutputs; i++)
            pfds[n++] = (struct pollfd){.fd = hold ? -1 : outputs[i].fd, .events = POLLIN};
        size_t peer0 = n;
        for (size_t i = 0; i < npeers; i++)
            pfds[n++] = (struct pollfd){
                .fd = peers[i].fd, .events = POLLIN | (buf_size(&peers[i].out) ? POLLOUT : 0)};
        int ready = poll(pfds, n, 500);
        if (ready > 0) {
            /* Handle by fd, since handlers reorder the arrays they come from. */
            for (size_t k = out0; k < peer0; k++) {
                if (!pfds[k].revents) continue;
                for (size_t i = 0; i < noutputs; i++)
                    if (outputs[i].fd == pfds[k].fd) {
                        on_output(i);
                        break;
                    }
            }
            for (size_t k = peer0; k < n; k++) {
                if (!pfds[k].revents) continue;
                for (size_t i = 0; i < npeers; i++)
                    if (peers[i].fd == pfds[k].fd) {
                        on_peer(i, pfds[k].revents);
                        break;
                    }
            }
            if (pfds[2].revents) flush_stdin();
            if (pfds[0].revents) accept_peer();
            if (pfds[1].revents && pidfd >= 0) {
                close(pidfd);
                pidfd = -1;
            }
        }
        reap();
    }
    free(pfds);
    if (pidfd >= 0) close(pidfd);
    while (noutputs) close_output(noutputs - 1);
    if (stdin_w >= 0) close(stdin_w);
    close(log_fd);
    int oom = opt_exec_process ? 0 : oom_killed(); /* before `runc delete` takes the cgroup */
    char finished[40];
    rfc3339nano(finished);
    write_exit(exit_code, finished, NULL, oom);
    struct buf body = {0};
    buf_printf(&body, "{\"exit_code\": %d, \"finished_at\": ", exit_code);
    json_string(&body, finished);
    buf_str(&body, "}");
    broadcast(F_EXITED, buf_data(&body), buf_size(&body));
    buf_free(&body);
    /* The exit is final once init is reaped: it is reported first, and `runc delete` (a Go
     * process, ~10-15 ms) runs while the daemon records it and removes a --rm container
     * (issue 17 row d). Our peers see the connection end only after the delete, and the
     * daemon waits for that before it starts this container again (the same runc ID). */
    if (!opt_exec_process) runc_delete();
    final_flush();
    return 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: dockyard-monitor --id ID --bundle DIR --state-dir DIR --runc-root DIR "
            "[--runc BIN] [--fd N] [--open-stdin] [--tty] [--detach] [--ephemeral] [--hold] "
            "[--exec-process FILE] "
            "[--log-driver json-file|none] [--log-max-size BYTES] [--log-max-file N]\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **val = NULL;
        if (!strcmp(a, "--id")) val = &opt_id;
        else if (!strcmp(a, "--bundle")) val = &opt_bundle;
        else if (!strcmp(a, "--state-dir")) val = &opt_state_dir;
        else if (!strcmp(a, "--runc")) val = &opt_runc;
        else if (!strcmp(a, "--runc-root")) val = &opt_runc_root;
        else if (!strcmp(a, "--exec-process")) val = &opt_exec_process;
        else if (!strcmp(a, "--fd")) {
            if (++i >= argc) usage();
            opt_fd = atoi(argv[i]);
            continue;
        } else if (!strcmp(a, "--log-max-size")) {
            if (++i >= argc) usage();
            log_max_size = atoll(argv[i]);
            continue;
        } else if (!strcmp(a, "--log-max-file")) {
            if (++i >= argc) usage();
            log_max_file = atoi(argv[i]);
            continue;
        } else if (!strcmp(a, "--log-driver")) {
            if (++i >= argc) usage();
            if (!strcmp(argv[i], "none")) log_none = 1;
            else if (strcmp(argv[i], "json-file")) usage();
            continue;
        } else if (!strcmp(a, "--open-stdin")) { opt_open_stdin = 1; continue; }
        else if (!strcmp(a, "--tty")) { opt_tty = 1; continue; }
        else if (!strcmp(a, "--detach")) { opt_detach = 1; continue; }
        else if (!strcmp(a, "--ephemeral")) { opt_ephemeral = 1; continue; }
        else if (!strcmp(a, "--hold")) { opt_hold = 1; continue; }
        else usage();
        if (++i >= argc) usage();
        *val = argv[i];
    }
    if (!opt_id || !opt_bundle || !opt_state_dir || !opt_runc_root) usage();
    signal(SIGPIPE, SIG_IGN);
    if (chdir(opt_state_dir) < 0) die("chdir");
    if (opt_detach) {
        /* The spawner reaps this intermediate at once; the monitor is nobody's child then, so
         * neither a dying daemon nor its child watcher can take it down. */
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid > 0) _exit(0);
    }
    /* Written whole under another name, then renamed: whoever reads it sees no file or the
     * pid, never the empty file between open and write. */
    FILE *f = fopen(MONITOR_PID_NAME ".tmp", "w");
    if (f) {
        fprintf(f, "%d\n", (int)getpid());
        if (fclose(f) == 0) rename(MONITOR_PID_NAME ".tmp", MONITOR_PID_NAME);
    }
    if (opt_fd >= 0) add_peer(opt_fd);
    return run();
}
