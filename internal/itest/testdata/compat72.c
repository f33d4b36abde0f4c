/* compat72 SOCKET: a client of the 72-byte route records.
 *
 * Built as is, it is a course client, written from the design's struct as
 * the course's clients declare it: a 4-byte op code, then destination, a
 * 1-byte mask, gateway and interface, naturally aligned. Built with
 * -DU16, it is a client of the u16 variant that a published client uses:
 * a 2-byte mask, packed, 2 bytes of padding (internal/compat).
 *
 * It prints "connected" once connected, then reads one record at a time
 * and keeps a table. It polls the socket and stdin, always draining the
 * socket first: on a "dump" line on stdin it prints the table, one
 * "DST/MASK via GATEWAY dev OIF" line per route, then "end". When the
 * server closes the connection it prints the table and "end" and exits.
 * Errors (an UPDATE or DELETE of an unknown route, a malformed record)
 * go to stderr. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define OP_CREATE 0
#define OP_UPDATE 1
#define OP_DELETE 2

#ifdef U16
typedef uint16_t mask_t;
struct route_msg {
	uint32_t op; /* 0 CREATE, 1 UPDATE, 2 DELETE */
	char destination[16];
	uint16_t mask;
	char gateway_ip[16];
	char oif[32];
	uint16_t pad;
} __attribute__((packed));
#else
typedef unsigned char mask_t;
struct route_msg {
	uint32_t op;
	char destination[16];
	char mask;
	char gateway_ip[16];
	char oif[32];
};
#endif

_Static_assert(sizeof(struct route_msg) == 72, "the record is 72 bytes");

struct entry {
	char destination[16];
	mask_t mask;
	char gateway_ip[16];
	char oif[32];
	int used;
};

#define MAX_ROUTES 100000
static struct entry table[MAX_ROUTES];
static int nroutes;

static struct entry *find(const struct route_msg *m) {
	for (int i = 0; i < nroutes; i++)
		if (table[i].used && table[i].mask == (mask_t)m->mask && strcmp(table[i].destination, m->destination) == 0)
			return &table[i];
	return NULL;
}

static struct entry *slot(void) {
	for (int i = 0; i < nroutes; i++)
		if (!table[i].used)
			return &table[i];
	if (nroutes == MAX_ROUTES) {
		fprintf(stderr, "table full\n");
		exit(1);
	}
	return &table[nroutes++];
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

/* check reports whether m is a well-formed record, telling stderr why not. */
static int check(const struct route_msg *m) {
	struct in_addr a;
	if (m->op > OP_DELETE)
		fprintf(stderr, "malformed record: op %u\n", m->op);
	else if (!text(m->destination, 16) || inet_pton(AF_INET, m->destination, &a) != 1)
		fprintf(stderr, "malformed record: destination %.16s\n", m->destination);
	else if ((mask_t)m->mask > 32)
		fprintf(stderr, "malformed record: mask %u of %s\n", (mask_t)m->mask, m->destination);
	else if (!text(m->gateway_ip, 16) || (m->gateway_ip[0] && inet_pton(AF_INET, m->gateway_ip, &a) != 1))
		fprintf(stderr, "malformed record: gateway %.16s of %s\n", m->gateway_ip, m->destination);
	else if (!text(m->oif, 32))
		fprintf(stderr, "malformed record: interface %.32s of %s\n", m->oif, m->destination);
	else
		return 1;
	return 0;
}

static void apply(const struct route_msg *m) {
	struct entry *e = find(m);
	switch (m->op) {
	case OP_CREATE:
	case OP_UPDATE:
		if (!e) {
			if (m->op == OP_UPDATE)
				fprintf(stderr, "UPDATE of an unknown route %s/%u\n", m->destination, (mask_t)m->mask);
			e = slot();
		} else if (m->op == OP_CREATE) {
			fprintf(stderr, "CREATE of a known route %s/%u\n", m->destination, (mask_t)m->mask);
		}
		memcpy(e->destination, m->destination, 16);
		e->mask = m->mask;
		memcpy(e->gateway_ip, m->gateway_ip, 16);
		memcpy(e->oif, m->oif, 32);
		e->used = 1;
		break;
	case OP_DELETE:
		if (!e)
			fprintf(stderr, "DELETE of an unknown route %s/%u\n", m->destination, (mask_t)m->mask);
		else
			e->used = 0;
		break;
	}
}

static void dump(void) {
	for (int i = 0; i < nroutes; i++)
		if (table[i].used)
			printf("%s/%u via %s dev %s\n", table[i].destination, table[i].mask,
			       table[i].gateway_ip, table[i].oif);
	printf("end\n");
	fflush(stdout);
}

/* readfull reads n bytes; it returns 0 at the end of the connection. */
static int readfull(int fd, void *p, size_t n) {
	size_t got = 0;
	while (got < n) {
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
		fprintf(stderr, "usage: compat72 SOCKET\n");
		return 2;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	strncpy(sa.sun_path, argv[1], sizeof sa.sun_path - 1);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		perror("connect");
		return 1;
	}
	printf("connected\n");
	fflush(stdout);
	struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
	char line[64];
	size_t linelen = 0;
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("poll");
			return 1;
		}
		if (pfd[0].revents) {
			struct route_msg m;
			if (!readfull(fd, &m, sizeof m))
				break;
			if (!check(&m))
				return 1;
			apply(&m);
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
				dump();
			else
				fprintf(stderr, "unknown command %s\n", line);
		}
	}
	dump();
	return 0;
}
