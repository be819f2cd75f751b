/*
 * The ceiling: the cheapest HTTP server possible, to measure how much of
 * the machine the load generator and the kernel leave for a server.
 *
 *     gcc -O2 -o ceiling benches/ceiling.c
 *     ./ceiling PORT BODY_BYTES [send|sendfile|close]
 *     ./ceiling PORT ROOT files|files-sendfile
 *     ./ceiling PORT FILE download|download-turns
 *
 * One thread, one epoll loop, 127.0.0.1 only. It does not parse beyond
 * finding a path, log, keep time or cache anything. Whatever req/s wrk
 * reaches against it, no real server can beat by much, and its CPU per
 * request is the kernel's share of a request: the rest of the machine's
 * time goes to the load generator and the kernel. Used by
 * benches/ceiling.py; not a server to use for anything else.
 *
 * MODE picks what the ceiling is the floor of.
 *
 * A canned response, for every "\r\n\r\n" read, with a body of BODY_BYTES
 * bytes (0: a head shaped like mioserve's 304; 1024: a 200 like the suite's
 * small file); the floor of a server answering from its memory cache:
 *   send      (default) head and body from memory in one write;
 *   sendfile  the head with send(MSG_MORE), then sendfile(2) of the body
 *             from a file kept open (written once at start, so it sits in
 *             the page cache): the kernel's cost of zero-copy bodies;
 *   close     as send, then close the connection (one request per
 *             connection: the kernel's cost of accept and close).
 *
 * A file under ROOT per request, named by the path after "GET ", opened,
 * stat'ed, sent and closed every time; the floor of a cache miss (the
 * suite's working set of 100,000 files, more than any server's cache
 * holds, so every request pays for the file system's calls):
 *   files           the file read behind a minimal head, one write of both;
 *   files-sendfile  the head with send(MSG_MORE), then sendfile(2) of the
 *                   body: what nginx and mioserve do for a miss.
 *
 * One large FILE to many clients at once, each connection with its own
 * offset into one descriptor opened at start, edge-triggered, keep-alive;
 * the floor of the suite's 500 concurrent downloads:
 *   download        sendfile(2) until the kernel says EAGAIN;
 *   download-turns  at most FILE_BYTES_PER_TURN per turn, then the
 *                   connection yields to the others, as mioserve and nginx
 *                   (sendfile_max_chunk) do so that no connection starves.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define READ_BYTES 65536
#define MAX_BATCH 64 /* canned responses written at once for pipelined requests */
/* files modes: a larger file gets the 404; the working set's are 4 KiB. */
#define FILE_BYTES_MAX 65536
#define HEAD_BYTES_MAX 128
/* download-turns: mioserve's FILE_BYTES_PER_TURN, nginx's sendfile_max_chunk. */
#define FILE_BYTES_PER_TURN (2 << 20)

enum mode { SEND, SENDFILE, CLOSE, FILES, FILES_SENDFILE, DOWNLOAD, DOWNLOAD_TURNS };
static const char *const MODE_NAMES[] = {"send", "sendfile", "close", "files", "files-sendfile",
                                         "download", "download-turns"};
static const char NOT_FOUND[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";

static enum mode mode;
static char *buffer; /* what one read brings */

/* Canned modes: the response, repeated MAX_BATCH times for pipelined batches. */
static char *batch;
static size_t head_len, body_bytes;
static int body_file = -1; /* sendfile: the body, written once at start */

/* files modes: the directory, and room for one head and body. */
static int root_fd = -1;
static char *response;

/* download modes: the file, its head, and one slot per possible descriptor
 * (indexed by fd, so no lookup), plus the queue of connections that used up
 * a turn while their socket could still take more. */
struct download {
    off_t sent;  /* file bytes sent of the current response; -1: waiting for a request */
    int queued;  /* an entry for this fd number is in turns_queue (it may be stale) */
};
static int download_file = -1;
static off_t download_bytes;
static char download_head[HEAD_BYTES_MAX];
static size_t download_head_len;
static struct download *downloads;
static int max_fds;
static int *turns_queue; /* a ring of max_fds: each fd is in it at most once */
static int turns_head, turns_len;

static void stop(int signal_number) {
    (void)signal_number;
    _exit(0); /* SIGTERM from the script: a clean exit, nothing to flush */
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void set_up_canned(const char *body_bytes_arg) {
    body_bytes = strtoul(body_bytes_arg, NULL, 10);
    char head[256];
    head_len = (size_t)(body_bytes
        ? snprintf(head, sizeof head,
                   "HTTP/1.1 200 OK\r\nServer: ceiling\r\nDate: Sat, 28 Nov 2026 19:00:00 GMT\r\n"
                   "Content-Type: text/html\r\nContent-Length: %zu\r\nConnection: %s\r\n\r\n",
                   body_bytes, mode == CLOSE ? "close" : "keep-alive")
        : snprintf(head, sizeof head,
                   "HTTP/1.1 304 Not Modified\r\nServer: ceiling\r\nDate: Sat, 28 Nov 2026 19:00:00 GMT\r\n"
                   "ETag: \"18ec4b3f90e64fd9-400\"\r\nConnection: keep-alive\r\nKeep-Alive: timeout=10\r\n\r\n"));
    size_t one_len = head_len + body_bytes;
    batch = malloc(one_len * MAX_BATCH);
    if (!batch) die("malloc");
    for (int i = 0; i < MAX_BATCH; i++) {
        memcpy(batch + i * one_len, head, head_len);
        memset(batch + i * one_len + head_len, 'x', body_bytes);
    }
    if (mode == SENDFILE) {
        FILE *file = tmpfile();
        if (!file || fwrite(batch + head_len, 1, body_bytes, file) != body_bytes || fflush(file) != 0)
            die("tmpfile");
        body_file = fileno(file);
    }
}

static void set_up_files(const char *root) {
    root_fd = open(root, O_RDONLY | O_DIRECTORY);
    if (root_fd < 0) die(root);
    response = malloc(HEAD_BYTES_MAX + FILE_BYTES_MAX);
    if (!response) die("malloc");
}

static void set_up_download(const char *path) {
    download_file = open(path, O_RDONLY);
    struct stat status;
    if (download_file < 0 || fstat(download_file, &status) < 0) die(path);
    download_bytes = status.st_size;
    download_head_len = (size_t)snprintf(download_head, sizeof download_head,
                                         "HTTP/1.1 200 OK\r\nContent-Length: %lld\r\n\r\n",
                                         (long long)download_bytes);
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) < 0) die("getrlimit");
    max_fds = limit.rlim_cur < (1 << 20) ? (int)limit.rlim_cur : 1 << 20;
    downloads = malloc(sizeof *downloads * (size_t)max_fds);
    turns_queue = malloc(sizeof *turns_queue * (size_t)max_fds);
    if (!downloads || !turns_queue) die("malloc");
    for (int fd = 0; fd < max_fds; fd++) downloads[fd] = (struct download){.sent = -1, .queued = 0};
}

/* Canned modes: one read and one write per request, as the ceiling
 * loop: requests are small, responses fit the socket buffer. */
static void answer_canned(int fd) {
    ssize_t got = read(fd, buffer, READ_BYTES);
    if (got <= 0) {
        close(fd);
        return;
    }
    int requests = 0;
    for (ssize_t j = 3; j < got; j++) {
        requests += buffer[j] == '\n' && buffer[j - 1] == '\r' && buffer[j - 2] == '\n' && buffer[j - 3] == '\r';
    }
    if (mode == SENDFILE) {
        for (; requests > 0; requests--) {
            off_t offset = 0;
            if (send(fd, batch, head_len, MSG_MORE) < 0) break;
            if (sendfile(fd, body_file, &offset, body_bytes) < 0) break;
        }
    }
    size_t one_len = head_len + body_bytes;
    while (requests > 0) {
        int now = requests < MAX_BATCH ? requests : MAX_BATCH;
        if (write(fd, batch, one_len * (size_t)now) < 0) break;
        requests -= now;
    }
    if (mode == CLOSE) close(fd);
}

/* files modes: the file named by `request` (up to `end`, its "\r\n\r\n"),
 * or the 404 when it is not a "GET /path " or the file cannot be served.
 * The path goes to openat() as it is, without confinement to ROOT: the
 * ceiling only ever talks to the benchmark's wrk on 127.0.0.1. */
static void answer_file(int fd, char *request, char *end) {
    if (end - request < 5 || memcmp(request, "GET /", 5) != 0) goto not_found;
    char *path = request + 5;
    char *space = memchr(path, ' ', (size_t)(end - path));
    if (!space) goto not_found;
    *space = '\0';
    int file = openat(root_fd, path, O_RDONLY);
    if (file < 0) goto not_found;
    struct stat status;
    if (fstat(file, &status) < 0 || !S_ISREG(status.st_mode) || status.st_size > FILE_BYTES_MAX) {
        close(file);
        goto not_found;
    }
    size_t file_bytes = (size_t)status.st_size;
    size_t head_bytes = (size_t)snprintf(response, HEAD_BYTES_MAX, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
                                         file_bytes);
    if (mode == FILES_SENDFILE) {
        if (send(fd, response, head_bytes, MSG_MORE) >= 0) sendfile(fd, file, NULL, file_bytes);
        close(file);
        return;
    }
    ssize_t got = read(file, response + head_bytes, file_bytes);
    close(file);
    if (got != (ssize_t)file_bytes) goto not_found;
    write(fd, response, head_bytes + file_bytes);
    return;
not_found:
    write(fd, NOT_FOUND, sizeof NOT_FOUND - 1);
}

/* files modes: one read, then an answer per complete request in it. */
static void answer_files(int fd) {
    ssize_t got = read(fd, buffer, READ_BYTES);
    if (got <= 0) {
        close(fd);
        return;
    }
    char *request = buffer, *read_end = buffer + got, *end;
    while ((end = memmem(request, (size_t)(read_end - request), "\r\n\r\n", 4)) != NULL) {
        answer_file(fd, request, end);
        request = end + 4;
    }
}

static void close_download(int fd) {
    close(fd);
    /* `queued` stays: a stale entry for this fd number may still be in the
     * queue, and it belongs to whichever connection gets the number next. */
    downloads[fd].sent = -1;
}

/* download modes: sendfile from the connection's offset until the kernel's
 * socket buffer is full (EAGAIN: an EPOLLOUT edge comes when there is room
 * again), the file is sent (back to waiting for a request) or, in
 * download-turns, the turn's bytes are used up (the connection queues for
 * another turn, because a socket that stays writable makes no new edge). */
static void send_turn(int fd) {
    struct download *download = &downloads[fd];
    size_t budget = mode == DOWNLOAD_TURNS ? FILE_BYTES_PER_TURN : SIZE_MAX;
    while (download->sent < download_bytes) {
        if (budget == 0) {
            if (!download->queued) {
                turns_queue[(turns_head + turns_len++) % max_fds] = fd;
                download->queued = 1;
            }
            return;
        }
        size_t left = (size_t)(download_bytes - download->sent);
        ssize_t sent = sendfile(fd, download_file, &download->sent, left < budget ? left : budget);
        if (sent > 0) {
            budget -= (size_t)sent;
        } else if (sent < 0 && errno == EAGAIN) {
            return;
        } else {
            close_download(fd);
            return;
        }
    }
    download->sent = -1;
}

/* download modes, on any event: read to EAGAIN (edge-triggered), starting
 * the response when a request's end arrives while waiting for one (a
 * request split over two reads or a pipelined one is not handled: curl
 * sends each GET in one packet and waits for the answer), then send a turn
 * unless the connection already waits in the queue for one. */
static void serve_download(int fd, uint32_t events) {
    struct download *download = &downloads[fd];
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        for (;;) {
            ssize_t got = read(fd, buffer, READ_BYTES);
            if (got < 0 && errno == EAGAIN) break;
            if (got <= 0) {
                close_download(fd);
                return;
            }
            if (download->sent < 0 && memmem(buffer, (size_t)got, "\r\n\r\n", 4)) {
                if (send(fd, download_head, download_head_len, MSG_MORE) < 0) {
                    close_download(fd);
                    return;
                }
                download->sent = 0;
            }
        }
    }
    if (download->sent >= 0 && !download->queued) send_turn(fd);
}

/* download-turns: one more turn for each connection queued before this
 * call; those that use it up again queue behind them. */
static void run_queued_turns(void) {
    for (int turns = turns_len; turns > 0; turns--) {
        int fd = turns_queue[turns_head];
        turns_head = (turns_head + 1) % max_fds;
        turns_len--;
        downloads[fd].queued = 0;
        if (downloads[fd].sent >= 0) send_turn(fd);
    }
}

int main(int argc, char **argv) {
    const char *usage = "usage: %s PORT BODY_BYTES [send|sendfile|close]\n"
                        "       %s PORT ROOT files|files-sendfile\n"
                        "       %s PORT FILE download|download-turns\n";
    if (argc != 3 && argc != 4) {
        fprintf(stderr, usage, argv[0], argv[0], argv[0]);
        return 2;
    }
    signal(SIGTERM, stop);
    /* sendfile(2) takes no MSG_NOSIGNAL: a client that closes while its body
       is on the way would kill the loop with SIGPIPE instead of an EPIPE. */
    signal(SIGPIPE, SIG_IGN);
    int port = atoi(argv[1]);
    const char *mode_name = argc == 4 ? argv[3] : "send";
    int known = 0;
    for (enum mode m = SEND; m <= DOWNLOAD_TURNS; m++) {
        if (strcmp(mode_name, MODE_NAMES[m]) == 0) {
            mode = m;
            known = 1;
        }
    }
    if (!known) {
        fprintf(stderr, "%s: unknown mode %s\n", argv[0], mode_name);
        return 2;
    }
    buffer = malloc(READ_BYTES);
    if (!buffer) die("malloc");
    int edge_triggered = mode == DOWNLOAD || mode == DOWNLOAD_TURNS;
    if (edge_triggered)
        set_up_download(argv[2]);
    else if (mode == FILES || mode == FILES_SENDFILE)
        set_up_files(argv[2]);
    else
        set_up_canned(argv[2]);

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
    /* Level-triggered for one read and one write per request; the download
     * modes wait for writability too, edge-triggered, as mioserve does. */
    uint32_t client_events = edge_triggered ? EPOLLIN | EPOLLOUT | EPOLLET : EPOLLIN;

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        /* Queued turns mean work to do now: poll without sleeping. */
        int ready = epoll_wait(epoll, events, MAX_EVENTS, turns_len > 0 ? 0 : -1);
        for (int i = 0; i < ready; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                int client;
                while ((client = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (edge_triggered && client >= max_fds) {
                        close(client);
                        continue;
                    }
                    struct epoll_event client_event = {.events = client_events, .data.fd = client};
                    epoll_ctl(epoll, EPOLL_CTL_ADD, client, &client_event);
                }
            } else if (edge_triggered) {
                serve_download(fd, events[i].events);
            } else if (mode == FILES || mode == FILES_SENDFILE) {
                answer_files(fd);
            } else {
                answer_canned(fd);
            }
        }
        run_queued_turns();
    }
}
