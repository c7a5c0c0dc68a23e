/*
 * Aligned text tables for the read-only commands (denials, sessions):
 * rows are kept until every column's width is known, then printed with
 * two blanks between columns and no padding after the last one.
 */
#ifndef MOAT_CLI_TABLE_H
#define MOAT_CLI_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct moat_cli_table;

/* A table with ncol columns titled head[0..ncol-1] (the strings are not
 * copied: they must outlive the table). NULL when out of memory. */
struct moat_cli_table *moat_cli_table_new(const char *const head[],
    size_t ncol);

/*
 * Append a row of ncol cells, copied moat_escape()d (cells hold
 * sandbox text). max, if not NULL, caps each column's width in bytes: a
 * longer cell is cut to max[i] with "..." at its end, never inside an
 * escape or a UTF-8 character; 0 means no cap (a cap must be 0 or at
 * least 4). MOAT_ERR_NOMEM leaves the table as it was.
 */
int moat_cli_table_add(struct moat_cli_table *t, const char *const cells[],
    const size_t max[]);

/* How many rows were added. */
size_t moat_cli_table_rows(const struct moat_cli_table *t);

/* The header line, then every row in the order added. */
void moat_cli_table_print(const struct moat_cli_table *t, FILE *f);

void moat_cli_table_free(struct moat_cli_table *t);

/* A wall-clock time in ms as local "YYYY-mm-dd HH:MM:SS" (the bare number
 * if it cannot be shown); len 24 is enough. */
void moat_cli_fmt_time(int64_t ms, char *buf, size_t len);

#endif
