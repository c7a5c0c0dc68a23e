/*
 * Text that came from a sandbox (binary paths, hosts, an agent's
 * intent_summary, rule names, reasons) made safe for an operator's
 * terminal, in one place: the CLI, moatd's log and the JSON the CLI
 * prints all use these.
 *
 * moat_escape() keeps printable text as it is and escapes visibly:
 * - C0 controls and DEL as \xNN (ESC is \x1b, a newline \x0a), so no
 *   escape sequence runs and no line can be forged;
 * - C1 controls: encoded as UTF-8 (U+0080..U+009F) as \u0080..\u009f,
 *   as raw bytes (not UTF-8) as \xNN;
 * - every byte that is not part of valid UTF-8 as \xNN;
 * - invisible characters that reorder or hide text (Unicode's
 *   default-ignorable code points: bidi overrides and isolates,
 *   zero-width characters, soft hyphen, fillers, variation selectors,
 *   tag characters; and the line and paragraph separators and the
 *   interlinear annotation marks) as \uNNNN, or \UNNNNNNNN beyond
 *   U+FFFF.
 * A backslash stays a backslash: the result is for reading, not for
 * decoding back.
 */
#ifndef MOAT_COMMON_ESCAPE_H
#define MOAT_COMMON_ESCAPE_H

#include <stdbool.h>
#include <stddef.h>

/* At most this many output bytes per input byte. */
#define MOAT_ESCAPE_RATIO 4

/*
 * Escape n bytes of s (NULs included) into a new string; the caller
 * frees. NULL when out of memory.
 */
char *moat_escape(const char *s, size_t n);

/* The same for a C string; NULL s gives "". */
char *moat_escape_str(const char *s);

/*
 * Escape into out (outlen bytes, NUL-terminated), cutting before an
 * escape or a character that does not fit. True when nothing was cut.
 */
bool moat_escape_buf(const char *s, size_t n, char *out, size_t outlen);

/* True when s (n bytes) is valid UTF-8 that moat_escape() keeps as is. */
bool moat_escape_clean(const char *s, size_t n);

/*
 * s made valid UTF-8 and nothing else (for storage and JSON, not for a
 * terminal): each byte that is not part of valid UTF-8 becomes the four
 * characters \xNN. Into out (outlen bytes, NUL-terminated), cut before
 * a character or escape that does not fit (*cut, which may be NULL,
 * says so). Returns how many bytes were replaced.
 */
size_t moat_utf8_fix(const char *s, size_t n, char *out, size_t outlen,
    bool *cut);

/* True when s (n bytes) is valid UTF-8. */
bool moat_utf8_valid(const char *s, size_t n);

/*
 * JSON text (compact or indented, or lines of a diff of it) made safe
 * without changing what it means: DEL, C1 controls, the invisible
 * characters above and C0 controls other than tab, newline and carriage
 * return become JSON \uNNNN escapes (a surrogate pair beyond U+FFFF;
 * they can only stand inside strings, where the escape is the same
 * character), bytes that are not UTF-8 become \ufffd. A new string (caller frees), NULL when out of memory.
 */
char *moat_escape_json(const char *text);

#endif
