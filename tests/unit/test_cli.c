/* cli/table.c: column widths, padding, and cutting long cells. */
#include <stdio.h>
#include <stdlib.h>

#include "common/errors.h"
#include "cli/table.h"
#include "tests/unit/tap.h"

/* Print t into a string (caller frees). */
static char *
render(const struct moat_cli_table *t)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);

	if (f == NULL)
		return NULL;
	moat_cli_table_print(t, f);
	fclose(f);
	return s;
}

int
main(void)
{
	static const char *const head[3] = { "A", "LONGER", "LAST" };
	static const size_t max[3] = { 0, 7, 6 };
	const char *r1[3] = { "xyz", "b", "tail" };
	/* Cut to 7 bytes, 4 would be kept: that splits the first "é". */
	const char *r2[3] = { "1", "abc\xc3\xa9\xc3\xa9zzz", "0123456789" };
	struct moat_cli_table *t;
	char *s;

	plan(6);
	t = moat_cli_table_new(head, 3);
	ok(t != NULL, "new");
	is_int(moat_cli_table_rows(t), 0, "empty");
	is_int(moat_cli_table_add(t, r1, NULL), 0, "add without caps");
	is_int(moat_cli_table_add(t, r2, max), 0, "add with caps");
	is_int(moat_cli_table_rows(t), 2, "two rows");
	s = render(t);
	is_str(s, "A    LONGER  LAST\n"
	    "xyz  b       tail\n"
	    "1    abc...  012...\n",
	    "widths in bytes, cut cells end in ..., no trailing blanks");
	free(s);
	moat_cli_table_free(t);
	moat_cli_table_free(NULL);
	return done_testing();
}
