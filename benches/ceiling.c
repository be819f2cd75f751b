/*
 * The ceiling: the cheapest HTTP server possible, to measure how many
 * requests per second the load generator itself can make on this machine.
 *
 *     gcc -O2 -o ceiling benches/ceiling.c && ./ceiling PORT BODY_BYTES [MODE]
 *
 * One thread, one epoll loop (level-triggered), 127.0.0.1 only. It does not
 * parse, open files, log, or keep time: for every "\r\n\r\n" it reads it
 * writes one canned response with a body of BODY_BYTES bytes (0: a head
 * shaped like mioserve's 304; 1024: a 200 like the suite's small file).
 * Whatever req/s wrk reaches against it, no real server can beat by much:
 * the rest of the machine's time goes to wrk and the kernel. Used by
 * benches/ceiling.py; not a server to use for anything else.
 *
 * MODE picks how the body leaves and what happens after:
 *   send      (default) head and body from memory in one write;
 *   sendfile  the head with send(MSG_MORE), then sendfile(2) of the body
 *             from a file kept open (written once at start, so it sits in
 *             the page cache): the kernel's cost of zero-copy bodies;
 *   close     as send, then close the connection (one request per
 *             connection: the kernel's cost of accept and close).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define READ_BYTES 65536
#define MAX_BATCH 64 /* responses written at once for pipelined requests */

static void stop(int signal_number) {
    (void)signal_number;
    _exit(0); /* SIGTERM from the script: a clean exit, nothing to flush */
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s PORT BODY_BYTES [send|sendfile|close]\n", argv[0]);
        return 2;
    }
    signal(SIGTERM, stop);
    int port = atoi(argv[1]);
    size_t body_bytes = strtoul(argv[2], NULL, 10);
    const char *mode = argc == 4 ? argv[3] : "send";
    int use_sendfile = strcmp(mode, "sendfile") == 0;
    int close_after = strcmp(mode, "close") == 0;
    if (!use_sendfile && !close_after && strcmp(mode, "send") != 0) {
        fprintf(stderr, "%s: unknown mode %s\n", argv[0], mode);
        return 2;
    }

    /* The canned response, repeated MAX_BATCH times for pipelined batches. */
    char head[256];
    int head_len = body_bytes
        ? snprintf(head, sizeof head,
                   "HTTP/1.1 200 OK\r\nServer: ceiling\r\nDate: Sat, 28 Nov 2026 19:00:00 GMT\r\n"
                   "Content-Type: text/html\r\nContent-Length: %zu\r\nConnection: %s\r\n\r\n",
                   body_bytes, close_after ? "close" : "keep-alive")
        : snprintf(head, sizeof head,
                   "HTTP/1.1 304 Not Modified\r\nServer: ceiling\r\nDate: Sat, 28 Nov 2026 19:00:00 GMT\r\n"
                   "ETag: \"18ec4b3f90e64fd9-400\"\r\nConnection: keep-alive\r\nKeep-Alive: timeout=10\r\n\r\n");
    size_t one_len = (size_t)head_len + body_bytes;
    char *batch = malloc(one_len * MAX_BATCH);
    char *buffer = malloc(READ_BYTES);
    if (!batch || !buffer) die("malloc");
    for (int i = 0; i < MAX_BATCH; i++) {
        memcpy(batch + i * one_len, head, (size_t)head_len);
        memset(batch + i * one_len + head_len, 'x', body_bytes);
    }

    /* sendfile mode: the body in a file, written once and kept open. */
    int body_file = -1;
    if (use_sendfile) {
        FILE *file = tmpfile();
        if (!file || fwrite(batch + head_len, 1, body_bytes, file) != body_bytes || fflush(file) != 0)
            die("tmpfile");
        body_file = fileno(file);
    }

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (listener < 0) die("socket");
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(listener, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(listener, 4096) < 0) die("listen");

    int epoll = epoll_create1(0);
    if (epoll < 0) die("epoll_create1");
    struct epoll_event event = {.events = EPOLLIN, .data.fd = listener};
    if (epoll_ctl(epoll, EPOLL_CTL_ADD, listener, &event) < 0) die("epoll_ctl");

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int ready = epoll_wait(epoll, events, MAX_EVENTS, -1);
        for (int i = 0; i < ready; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                int client;
                while ((client = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    struct epoll_event client_event = {.events = EPOLLIN, .data.fd = client};
                    epoll_ctl(epoll, EPOLL_CTL_ADD, client, &client_event);
                }
                continue;
            }
            /* One read and one write per request, as the ceiling
             * loop: requests are small, responses fit the socket buffer. */
            ssize_t got = read(fd, buffer, READ_BYTES);
            if (got <= 0) {
                close(fd);
                continue;
            }
            int requests = 0;
            for (ssize_t j = 3; j < got; j++) {
                requests += buffer[j] == '\n' && buffer[j - 1] == '\r' && buffer[j - 2] == '\n' &&
                            buffer[j - 3] == '\r';
            }
            if (use_sendfile) {
                for (; requests > 0; requests--) {
                    off_t offset = 0;
                    if (send(fd, head, (size_t)head_len, MSG_MORE) < 0) break;
                    if (sendfile(fd, body_file, &offset, body_bytes) < 0) break;
                }
            }
            while (requests > 0) {
                int now = requests < MAX_BATCH ? requests : MAX_BATCH;
                if (write(fd, batch, one_len * (size_t)now) < 0) break;
                requests -= now;
            }
            if (close_after) close(fd);
        }
    }
}
