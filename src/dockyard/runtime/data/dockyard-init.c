/* dockyard-init: a minimal init for `docker run --init` (what tini is to Docker).
 *
 * PID 1 in a PID namespace ignores signals it has no handler for and must reap orphans, or
 * zombies pile up. This forks the command, forwards every catchable signal to it, reaps all
 * children, and exits with the command's status (128+N when a signal N killed it).
 * Usage: dockyard-init -- CMD [ARG...]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "--") == 0) first = 2;
    if (first >= argc) {
        fprintf(stderr, "usage: dockyard-init -- command [args...]\n");
        return 2;
    }
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t child = fork();
    if (child < 0) {
        perror("dockyard-init: fork");
        return 1;
    }
    if (child == 0) {
        /* Own process group so a terminal's job control reaches the command, as tini does;
         * taken while signals are still blocked, so tcsetpgrp cannot stop us with SIGTTOU. */
        setpgid(0, 0);
        if (isatty(STDIN_FILENO)) tcsetpgrp(STDIN_FILENO, getpid());
        sigprocmask(SIG_SETMASK, &old, NULL);
        execvp(argv[first], &argv[first]);
        fprintf(stderr, "dockyard-init: exec %s: %s\n", argv[first], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    for (;;) {
        siginfo_t info;
        struct timespec tick = {1, 0};
        int sig = sigtimedwait(&all, &info, &tick);
        if (sig > 0 && sig != SIGCHLD) {
            kill(child, sig);
        }
        for (;;) {
            int status;
            pid_t pid = waitpid(-1, &status, WNOHANG);
            if (pid <= 0) break;
            if (pid == child) {
                if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
                return WEXITSTATUS(status);
            }
        }
    }
}
