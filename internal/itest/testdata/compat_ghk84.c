/* compat_ghk84 SOCKET: a client of the 84-byte framing that a published
 * client family speaks, written from its struct: a 76-byte message (op,
 * table, then a route with a 2-byte mask or a MAC as text), then int32
 * synchronized and int32 loop, each read with its own read() as those
 * clients do (but robust to short reads). It writes its pid right after
 * connecting, so that the server signals it (SIGUSR1) on a flush: it then
 * empties both its tables before its next read. It reads each MAC's IP
 * address as text from the POSIX shared-memory object named "/" + the
 * MAC's text.
 *
 * It prints "connected" once it has sent its pid. It polls the socket and
 * stdin, always draining the socket first: on a "dump" line on stdin it
 * prints its tables, one "DST/MASK via GATEWAY dev OIF" line per route and
 * one "MAC IP" line per MAC entry (the IP read from the MAC's object
 * then), then "end". When the server says loop 0 or closes the connection
 * it prints its tables and "end" and exits. Errors (an UPDATE or DELETE of
 * an unknown entry, a malformed record, a missing or bad object) go to
 * stderr. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define OP_CREATE 0
#define OP_UPDATE 1
#define OP_DELETE 2
#define OP_NONE 3

#define TABLE_ROUTES 0
#define TABLE_MACS 1

struct route {
	char destination[16];
	uint16_t mask;
	char gateway_ip[16];
	char oif[32];
};

struct msg {
	uint32_t op;
	uint32_t table;
	union {
		struct route route;
		char mac[18];
	} u;
};

_Static_assert(sizeof(struct route) == 66, "the route is 66 bytes");
_Static_assert(sizeof(struct msg) == 76, "the message is 76 bytes");

struct route_entry {
	struct route r;
	int used;
};

struct mac_entry {
	char mac[18];
	int used;
};

#define MAX_ENTRIES 100000
static struct route_entry routes[MAX_ENTRIES];
static int nroutes;
static struct mac_entry macs[MAX_ENTRIES];
static int nmacs;

static volatile sig_atomic_t flushed;

static void on_usr1(int sig) {
	(void)sig;
	flushed = 1;
}

/* check_flush empties both tables if the server flushed them. */
static void check_flush(void) {
	if (!flushed)
		return;
	flushed = 0;
	memset(routes, 0, sizeof routes[0] * nroutes);
	nroutes = 0;
	memset(macs, 0, sizeof macs[0] * nmacs);
	nmacs = 0;
}

/* text reports whether the n-byte field f is NUL-terminated and
 * NUL-padded. */
static int text(const char *f, int n) {
	const char *nul = memchr(f, 0, n);
	if (!nul)
		return 0;
	for (; nul < f + n; nul++)
		if (*nul)
			return 0;
	return 1;
}

/* read_ip reads the IP address of mac from its object into ip (16 bytes),
 * telling stderr what is wrong when quiet is 0; it returns 1 if the object
 * holds an IPv4 address as NUL-terminated text. */
static int read_ip(const char *mac, char *ip, int quiet) {
	char name[20];
	snprintf(name, sizeof name, "/%s", mac);
	int fd = shm_open(name, O_RDONLY, 0);
	if (fd < 0) {
		if (!quiet)
			fprintf(stderr, "object %s: shm_open: %s\n", name, strerror(errno));
		return 0;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || st.st_size < 16) {
		if (!quiet)
			fprintf(stderr, "object %s: %lld bytes, want 16\n", name, (long long)st.st_size);
		close(fd);
		return 0;
	}
	char *p = mmap(NULL, 16, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED) {
		if (!quiet)
			fprintf(stderr, "object %s: mmap: %s\n", name, strerror(errno));
		return 0;
	}
	memcpy(ip, p, 16);
	munmap(p, 16);
	struct in_addr a;
	if (!memchr(ip, 0, 16) || inet_pton(AF_INET, ip, &a) != 1) {
		if (!quiet)
			fprintf(stderr, "object %s: %.16s is not an IPv4 address as NUL-terminated text\n", name, ip);
		return 0;
	}
	return 1;
}

/* check reports whether m is a well-formed message, telling stderr why
 * not. */
static int check(const struct msg *m, int32_t sync, int32_t loop) {
	struct in_addr a;
	const struct route *r = &m->u.route;
	if (m->op > OP_NONE)
		fprintf(stderr, "malformed record: op %u\n", m->op);
	else if (m->table > TABLE_MACS)
		fprintf(stderr, "malformed record: table %u\n", m->table);
	else if (sync < 0 || sync > 2)
		fprintf(stderr, "malformed record: synchronized %d\n", sync);
	else if (loop != 0 && loop != 1)
		fprintf(stderr, "malformed record: loop %d\n", loop);
	else if (m->op == OP_NONE)
		return 1;
	else if (m->table == TABLE_MACS) {
		unsigned b[6];
		char rest;
		if (!text(m->u.mac, 18) || strlen(m->u.mac) != 17 ||
		    sscanf(m->u.mac, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &rest) != 6)
			fprintf(stderr, "malformed record: mac %.18s\n", m->u.mac);
		else
			return 1;
	} else if (!text(r->destination, 16) || inet_pton(AF_INET, r->destination, &a) != 1)
		fprintf(stderr, "malformed record: destination %.16s\n", r->destination);
	else if (r->mask > 32)
		fprintf(stderr, "malformed record: mask %u of %s\n", r->mask, r->destination);
	else if (!text(r->gateway_ip, 16) || (r->gateway_ip[0] && inet_pton(AF_INET, r->gateway_ip, &a) != 1))
		fprintf(stderr, "malformed record: gateway %.16s of %s\n", r->gateway_ip, r->destination);
	else if (!text(r->oif, 32))
		fprintf(stderr, "malformed record: interface %.32s of %s\n", r->oif, r->destination);
	else
		return 1;
	return 0;
}

static struct route_entry *find_route(const struct route *r) {
	for (int i = 0; i < nroutes; i++)
		if (routes[i].used && routes[i].r.mask == r->mask && strcmp(routes[i].r.destination, r->destination) == 0)
			return &routes[i];
	return NULL;
}

static struct mac_entry *find_mac(const char *mac) {
	for (int i = 0; i < nmacs; i++)
		if (macs[i].used && strcmp(macs[i].mac, mac) == 0)
			return &macs[i];
	return NULL;
}

static void apply_route(uint32_t op, const struct route *r) {
	struct route_entry *e = find_route(r);
	switch (op) {
	case OP_CREATE:
	case OP_UPDATE:
		if (!e) {
			if (op == OP_UPDATE)
				fprintf(stderr, "UPDATE of an unknown route %s/%u\n", r->destination, r->mask);
			for (int i = 0; i < nroutes && !e; i++)
				if (!routes[i].used)
					e = &routes[i];
			if (!e && nroutes == MAX_ENTRIES) {
				fprintf(stderr, "route table full\n");
				exit(1);
			}
			if (!e)
				e = &routes[nroutes++];
		} else if (op == OP_CREATE) {
			fprintf(stderr, "CREATE of a known route %s/%u\n", r->destination, r->mask);
		}
		e->r = *r;
		e->used = 1;
		break;
	case OP_DELETE:
		if (!e)
			fprintf(stderr, "DELETE of an unknown route %s/%u\n", r->destination, r->mask);
		else
			e->used = 0;
		break;
	}
}

static void apply_mac(uint32_t op, const char *mac) {
	struct mac_entry *e = find_mac(mac);
	char ip[16];
	switch (op) {
	case OP_CREATE:
	case OP_UPDATE:
		if (!e) {
			if (op == OP_UPDATE)
				fprintf(stderr, "UPDATE of an unknown MAC %s\n", mac);
			for (int i = 0; i < nmacs && !e; i++)
				if (!macs[i].used)
					e = &macs[i];
			if (!e && nmacs == MAX_ENTRIES) {
				fprintf(stderr, "MAC table full\n");
				exit(1);
			}
			if (!e)
				e = &macs[nmacs++];
		} else if (op == OP_CREATE) {
			fprintf(stderr, "CREATE of a known MAC %s\n", mac);
		}
		memcpy(e->mac, mac, 18);
		e->used = 1;
		read_ip(mac, ip, 0); /* the object must be there before the CREATE */
		break;
	case OP_DELETE:
		if (!e)
			fprintf(stderr, "DELETE of an unknown MAC %s\n", mac);
		else
			e->used = 0;
		break;
	}
}

/* dump prints the tables; at the end (quiet) a MAC whose object is gone
 * is printed with the IP "gone". */
static void dump(int quiet) {
	for (int i = 0; i < nroutes; i++)
		if (routes[i].used)
			printf("%s/%u via %s dev %s\n", routes[i].r.destination, routes[i].r.mask,
			       routes[i].r.gateway_ip, routes[i].r.oif);
	for (int i = 0; i < nmacs; i++) {
		char ip[16];
		if (macs[i].used)
			printf("%s %s\n", macs[i].mac, read_ip(macs[i].mac, ip, quiet) ? ip : "gone");
	}
	printf("end\n");
	fflush(stdout);
}

/* readfull reads n bytes, checking for a flush before each read; it
 * returns 0 at the end of the connection. */
static int readfull(int fd, void *p, size_t n) {
	size_t got = 0;
	while (got < n) {
		check_flush();
		ssize_t k = read(fd, (char *)p + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			perror("read");
		if (k <= 0) {
			if (got > 0)
				fprintf(stderr, "malformed record: connection ended after %zu of %zu bytes\n", got, n);
			return 0;
		}
		got += k;
	}
	return 1;
}

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: compat_ghk84 SOCKET\n");
		return 2;
	}
	struct sigaction sa_usr1 = {.sa_handler = on_usr1};
	sigemptyset(&sa_usr1.sa_mask);
	sigaction(SIGUSR1, &sa_usr1, NULL);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strncpy(sa.sun_path, argv[1], sizeof sa.sun_path - 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		perror("connect");
		return 1;
	}
	int32_t pid = getpid();
	if (write(fd, &pid, sizeof pid) != sizeof pid) {
		perror("write pid");
		return 1;
	}
	printf("connected\n");
	fflush(stdout);
	struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
	char line[64];
	size_t linelen = 0;
	for (;;) {
		check_flush();
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("poll");
			return 1;
		}
		if (pfd[0].revents) {
			struct msg m;
			int32_t sync, loop;
			if (!readfull(fd, &m, sizeof m) || !readfull(fd, &sync, sizeof sync) || !readfull(fd, &loop, sizeof loop))
				break;
			if (!check(&m, sync, loop))
				return 1;
			if (loop == 0)
				break;
			if (m.op == OP_NONE)
				continue;
			if (m.table == TABLE_ROUTES)
				apply_route(m.op, &m.u.route);
			else
				apply_mac(m.op, m.u.mac);
			continue; /* the socket first */
		}
		if (pfd[1].revents) {
			ssize_t k = read(0, line + linelen, 1);
			if (k <= 0) {
				pfd[1].fd = -1; /* stdin closed: only the socket */
				continue;
			}
			if (line[linelen] != '\n' && linelen < sizeof line - 1) {
				linelen++;
				continue;
			}
			line[linelen] = 0;
			linelen = 0;
			if (strcmp(line, "dump") == 0)
				dump(0);
			else
				fprintf(stderr, "unknown command %s\n", line);
		}
	}
	dump(1);
	return 0;
}
