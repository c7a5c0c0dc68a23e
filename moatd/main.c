#include <stdio.h>

int
main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "moatd: arrives with the SSH issue\n");
	return 100;
}
