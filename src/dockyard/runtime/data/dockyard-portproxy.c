/* dockyard-portproxy: a container's published ports, outside the daemon (our docker-proxy).
 *
 * A drop-in for `python -m dockyard.runtime.portproxy` (runtime/portproxy.py says why it is a
 * process of its own) at a few hundred KiB instead of ~12 MiB of PSS. The daemon binds the
 * host sockets and passes them in; this forwards every TCP connection (half-closes passed
 * on) and UDP exchange (one upstream socket per client address, as docker-proxy keeps, idle
 * ones dropped after docker-proxy's 90 s) to the container's address, until SIGTERM or until
 * the container's init (--watch-pid) is gone.
 *
 * Usage: dockyard-portproxy --id CID --target IP --pid-file F [--watch-pid PID] FD:PROTO:PORT...
 * It forks itself away and returns once its child wrote the pid file and serves.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE 65536
#define UDP_IDLE_MS (90 * 1000)
#define MAX_UDP_FLOWS 1024

static void die(const char *what) {
    fprintf(stderr, "dockyard-portproxy: %s: %s\n", what, strerror(errno));
    exit(1);
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *target_ip;

static void set_target(const char *ip, int port, struct sockaddr_storage *out, socklen_t *len) {
    memset(out, 0, sizeof *out);
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((unsigned short)port);
        *len = sizeof *v4;
    } else if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((unsigned short)port);
        *len = sizeof *v6;
    } else {
        fprintf(stderr, "dockyard-portproxy: bad target address %s\n", ip);
        exit(2);
    }
}

/* ---- listeners ---------------------------------------------------------------------------- */

struct listener {
    int fd, udp, port;
};
static struct listener *listeners;
static size_t nlisteners;

/* ---- TCP: one client socket and one upstream socket per connection ---------------------- */

struct half { /* bytes read from one side, not yet written to the other */
    char *p;
    size_t len;
    int eof, shut;
};

struct conn {
    int fd[2]; /* 0: client, 1: container */
    int connecting;
    struct half h[2]; /* h[i]: read from fd[i], written to fd[1 - i] */
};
static struct conn *conns;
static size_t nconns;

static void close_conn(size_t i) {
    for (int k = 0; k < 2; k++) {
        close(conns[i].fd[k]);
        free(conns[i].h[k].p);
    }
    conns[i] = conns[--nconns];
}

static void accept_tcp(struct listener *l) {
    int client = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client < 0) return;
    struct sockaddr_storage to;
    socklen_t to_len;
    set_target(target_ip, l->port, &to, &to_len);
    int up = socket(to.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (up < 0) {
        close(client);
        return;
    }
    int rc = connect(up, (struct sockaddr *)&to, to_len);
    if (rc < 0 && errno != EINPROGRESS) {
        close(up);
        close(client);
        return;
    }
    struct conn *c = realloc(conns, (nconns + 1) * sizeof *conns);
    if (!c) die("realloc");
    conns = c;
    memset(&conns[nconns], 0, sizeof *conns);
    conns[nconns].fd[0] = client;
    conns[nconns].fd[1] = up;
    conns[nconns].connecting = rc < 0;
    nconns++;
}

/* Move what can be moved on connection i; returns 0 when it was closed. */
static int pump(size_t i) {
    struct conn *c = &conns[i];
    if (c->connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &len);
        if (err == EINPROGRESS || err == EALREADY) return 1;
        if (err) {
            close_conn(i);
            return 0;
        }
        struct pollfd p = {.fd = c->fd[1], .events = POLLOUT};
        if (poll(&p, 1, 0) <= 0) return 1;
        c->connecting = 0;
    }
    for (int k = 0; k < 2; k++) {
        struct half *h = &c->h[k];
        int from = c->fd[k], to = c->fd[1 - k];
        if (!h->eof && h->len == 0) {
            if (!h->p && !(h->p = malloc(BUF_SIZE))) die("malloc");
            ssize_t n = read(from, h->p, BUF_SIZE);
            if (n == 0) h->eof = 1;
            else if (n > 0) h->len = (size_t)n;
            else if (errno != EAGAIN && errno != EINTR) {
                close_conn(i);
                return 0;
            }
        }
        while (h->len) {
            ssize_t n = send(to, h->p, h->len, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EINTR) break;
                close_conn(i);
                return 0;
            }
            memmove(h->p, h->p + n, h->len - (size_t)n);
            h->len -= (size_t)n;
        }
        if (h->len == 0 && h->p) { /* an idle connection holds no buffers */
            free(h->p);
            h->p = NULL;
        }
        if (h->eof && h->len == 0 && !h->shut) {
            shutdown(to, SHUT_WR);
            h->shut = 1;
        }
    }
    if (c->h[0].shut && c->h[1].shut) {
        close_conn(i);
        return 0;
    }
    return 1;
}

/* ---- UDP: one connected upstream socket per client address -------------------------------- */

struct flow {
    struct listener *l;
    struct sockaddr_storage client;
    socklen_t client_len;
    int up;
    long long last;
};
static struct flow *flows;
static size_t nflows;

static void close_flow(size_t i) {
    close(flows[i].up);
    flows[i] = flows[--nflows];
}

static void on_udp(struct listener *l) {
    char data[BUF_SIZE];
    struct sockaddr_storage from;
    socklen_t from_len = sizeof from;
    ssize_t n = recvfrom(l->fd, data, sizeof data, 0, (struct sockaddr *)&from, &from_len);
    if (n < 0) return;
    size_t i;
    for (i = 0; i < nflows; i++)
        if (flows[i].l == l && flows[i].client_len == from_len &&
            !memcmp(&flows[i].client, &from, from_len))
            break;
    if (i == nflows) {
        if (nflows == MAX_UDP_FLOWS) { /* forget the least recently used */
            size_t old = 0;
            for (size_t k = 1; k < nflows; k++)
                if (flows[k].last < flows[old].last) old = k;
            close_flow(old);
        }
        struct sockaddr_storage to;
        socklen_t to_len;
        set_target(target_ip, l->port, &to, &to_len);
        int up = socket(to.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (up < 0) return;
        if (connect(up, (struct sockaddr *)&to, to_len) < 0) {
            close(up);
            return;
        }
        struct flow *f = realloc(flows, (nflows + 1) * sizeof *flows);
        if (!f) die("realloc");
        flows = f;
        i = nflows++;
        flows[i] = (struct flow){.l = l, .client = from, .client_len = from_len, .up = up};
    }
    flows[i].last = now_ms();
    send(flows[i].up, data, (size_t)n, MSG_NOSIGNAL);
}

static void on_upstream(size_t i) {
    char data[BUF_SIZE];
    ssize_t n = recv(flows[i].up, data, sizeof data, 0);
    if (n < 0) return;
    flows[i].last = now_ms();
    sendto(flows[i].l->fd, data, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&flows[i].client,
           flows[i].client_len);
}

/* ---- main --------------------------------------------------------------------------------- */

static void serve(int pidfd) {
    struct pollfd *pfds = NULL;
    size_t cap = 0;
    for (;;) {
        size_t want = 1 + nlisteners + 2 * nconns + nflows;
        if (want > cap) {
            cap = want * 2;
            if (!(pfds = realloc(pfds, cap * sizeof *pfds))) die("realloc");
        }
        size_t n = 0;
        pfds[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        for (size_t i = 0; i < nlisteners; i++)
            pfds[n++] = (struct pollfd){.fd = listeners[i].fd, .events = POLLIN};
        size_t conn0 = n;
        for (size_t i = 0; i < nconns; i++) {
            struct conn *c = &conns[i];
            for (int k = 0; k < 2; k++) {
                short ev = 0;
                if (c->connecting) ev = k == 1 ? POLLOUT : 0; /* the client waits meanwhile */
                else {
                    if (!c->h[k].eof && c->h[k].len == 0) ev |= POLLIN;
                    if (c->h[1 - k].len) ev |= POLLOUT;
                }
                pfds[n++] = (struct pollfd){.fd = c->fd[k], .events = ev};
            }
        }
        size_t flow0 = n;
        size_t nconns_polled = nconns, nflows_polled = nflows;
        for (size_t i = 0; i < nflows; i++)
            pfds[n++] = (struct pollfd){.fd = flows[i].up, .events = POLLIN};
        int ready = poll(pfds, n, nflows ? 1000 : -1);
        if (ready < 0 && errno != EINTR) die("poll");
        if (pidfd >= 0 && pfds[0].revents) return; /* the container's init is gone */
        if (ready > 0) {
            /* connections first, from the end: close_conn moves the last one into the gap */
            for (size_t i = nconns_polled; i-- > 0;) {
                if (pfds[conn0 + 2 * i].revents || pfds[conn0 + 2 * i + 1].revents) pump(i);
            }
            for (size_t i = nflows_polled; i-- > 0;)
                if (i < nflows && pfds[flow0 + i].revents) on_upstream(i);
            for (size_t i = 0; i < nlisteners; i++) {
                if (!pfds[1 + i].revents) continue;
                if (listeners[i].udp) on_udp(&listeners[i]);
                else accept_tcp(&listeners[i]);
            }
        }
        long long now = now_ms();
        for (size_t i = nflows; i-- > 0;)
            if (now - flows[i].last > UDP_IDLE_MS) close_flow(i);
    }
}

static void usage(void) {
    fprintf(stderr, "usage: dockyard-portproxy --id CID --target IP --pid-file F "
                    "[--watch-pid PID] FD:PROTO:PORT...\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *id = NULL, *ip = NULL, *pid_file = NULL;
    int watch = 0;
    int i;
    for (i = 1; i < argc && !strncmp(argv[i], "--", 2); i++) {
        if (i + 1 >= argc) usage();
        if (!strcmp(argv[i], "--id")) id = argv[++i];
        else if (!strcmp(argv[i], "--target")) ip = argv[++i];
        else if (!strcmp(argv[i], "--pid-file")) pid_file = argv[++i];
        else if (!strcmp(argv[i], "--watch-pid")) watch = atoi(argv[++i]);
        else usage();
    }
    if (!id || !ip || !pid_file || i >= argc) usage();
    struct sockaddr_storage check;
    socklen_t check_len;
    set_target(ip, 0, &check, &check_len);
    target_ip = ip;
    listeners = calloc((size_t)(argc - i), sizeof *listeners);
    for (; i < argc; i++) {
        int fd, port;
        char proto[8];
        if (sscanf(argv[i], "%d:%7[a-z]:%d", &fd, proto, &port) != 3) usage();
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        listeners[nlisteners++] = (struct listener){fd, !strcmp(proto, "udp"), port};
    }
    signal(SIGPIPE, SIG_IGN);

    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0) die("pipe");
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child > 0) {
        /* Return once the child has written its pid file (it closes the pipe then). */
        close(ready[1]);
        char c;
        ssize_t n = read(ready[0], &c, 1);
        return n == 1 && c == 'y' ? 0 : 1;
    }
    close(ready[0]);
    setsid();
    int pidfd = -1;
    if (watch) {
        /* The container's init: when it is gone there is nothing to forward to, whoever
         * forgot to end us (a daemon that crashed, a test harness). */
        pidfd = (int)syscall(SYS_pidfd_open, watch, 0);
        if (pidfd < 0 && errno == ESRCH) return 0;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", pid_file);
    FILE *f = fopen(tmp, "w");
    if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0 || rename(tmp, pid_file) < 0)
        die("writing the pid file");
    if (write(ready[1], "y", 1) != 1) die("write");
    close(ready[1]);
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    if (null > 2) close(null);
    serve(pidfd);
    return 0;
}
