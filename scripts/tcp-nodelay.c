/* LD_PRELOAD shim for test peers: every accepted TCP socket gets TCP_NODELAY.
 *
 * Why: s3s-fs (the S3 server the load runs use, scripts/start-replicas.sh) leaves Nagle's
 * algorithm on, and writes a response's head and body separately; on a keep-alive connection the
 * body then waits for the client's delayed ACK, ~40 ms per GET. Measured with wrk on a
 * presigned 2 KB GET, one connection: 42 req/s without this, 5,300 with it (and 4,000 with
 * `Connection: close`, which flushes on close). Real S3 servers set TCP_NODELAY; without it the
 * S3 rows of scripts/bench-http.sh measured that stall, not the gateway.
 *
 * Built by start-replicas.sh with the machine's gcc: cc -O2 -shared -fPIC -o X.so tcp-nodelay.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

/* Best effort: on a socket that is not TCP the call fails and nothing changes. */
static int nodelay(int fd) {
    if (fd >= 0) {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

int accept4(int s, struct sockaddr *addr, socklen_t *len, int flags) {
    static int (*real)(int, struct sockaddr *, socklen_t *, int);
    if (!real) real = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
    return nodelay(real(s, addr, len, flags));
}

int accept(int s, struct sockaddr *addr, socklen_t *len) {
    static int (*real)(int, struct sockaddr *, socklen_t *);
    if (!real) real = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
    return nodelay(real(s, addr, len));
}
