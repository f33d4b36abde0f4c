/* mqsend QUEUE MESSAGE...: sends each MESSAGE to the POSIX message queue
 * QUEUE, as any local C program can send commands to rtmd. */
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
	if (argc < 2) {
		fprintf(stderr, "usage: mqsend QUEUE MESSAGE...\n");
		return 2;
	}
	mqd_t q = mq_open(argv[1], O_WRONLY);
	if (q == (mqd_t)-1) {
		perror("mq_open");
		return 1;
	}
	for (int i = 2; i < argc; i++) {
		if (mq_send(q, argv[i], strlen(argv[i]), 0) != 0) {
			perror("mq_send");
			return 1;
		}
	}
	mq_close(q);
	return 0;
}
