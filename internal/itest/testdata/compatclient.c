/* compatclient SOCKET: a client of the classic 72-byte route record,
 * written from the record's table in docs/protocol.md. It reads one record
 * per read(), keeps a table, and when the server closes the connection it
 * prints the table, one "DST/MASK via GATEWAY dev OIF" line per route. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct record {
	uint32_t op; /* 0 CREATE, 1 UPDATE, 2 DELETE */
	char dst[16];
	uint16_t mask;
	char gw[16];
	char oif[32];
	uint16_t pad;
} __attribute__((packed));

struct entry {
	char dst[16];
	uint16_t mask;
	char gw[16];
	char oif[32];
	int used;
};

static struct entry table[200000];
static int n;

static struct entry *find(const struct record *r) {
	for (int i = 0; i < n; i++)
		if (table[i].used && table[i].mask == r->mask && strncmp(table[i].dst, r->dst, 16) == 0)
			return &table[i];
	return NULL;
}

int main(int argc, char **argv) {
	if (sizeof(struct record) != 72) {
		fprintf(stderr, "record is %zu bytes\n", sizeof(struct record));
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
	struct record r;
	for (;;) {
		ssize_t got = 0;
		while (got < (ssize_t)sizeof r) {
			ssize_t k = read(fd, (char *)&r + got, sizeof r - got);
			if (k <= 0)
				goto done;
			got += k;
		}
		struct entry *e = find(&r);
		switch (r.op) {
		case 0:
		case 1:
			if (!e) {
				if (r.op == 1)
					fprintf(stderr, "UPDATE of a missing route %.16s/%u\n", r.dst, r.mask);
				e = &table[n++];
			}
			memcpy(e->dst, r.dst, 16);
			e->mask = r.mask;
			memcpy(e->gw, r.gw, 16);
			memcpy(e->oif, r.oif, 32);
			e->used = 1;
			break;
		case 2:
			if (!e)
				fprintf(stderr, "DELETE of a missing route %.16s/%u\n", r.dst, r.mask);
			else
				e->used = 0;
			break;
		default:
			fprintf(stderr, "bad op %u\n", r.op);
			return 1;
		}
	}
done:
	for (int i = 0; i < n; i++)
		if (table[i].used)
			printf("%.16s/%u via %.16s dev %.32s\n", table[i].dst, table[i].mask, table[i].gw, table[i].oif);
	return 0;
}
