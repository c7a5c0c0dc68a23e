/* common/escape: sandbox text made safe for the operator's terminal. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/escape.h"
#include "common/log.h"
#include "tests/unit/tap.h"

/* No byte an xterm acts on: C0, DEL, C1 (raw or UTF-8 encoded). */
static bool
terminal_safe(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; p[i] != '\0'; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			return false;
		if (p[i] == 0xc2 && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
			return false;
		if (p[i] >= 0x80 && p[i] <= 0x9f && (i == 0 ||
		    p[i - 1] < 0x80))
			return false;
	}
	return true;
}

/* One line ending in its only newline, otherwise terminal_safe. */
static bool
terminal_safe_line(char *s)
{
	size_t n = strlen(s);
	bool r;

	if (n == 0 || s[n - 1] != '\n')
		return false;
	s[n - 1] = '\0';
	r = terminal_safe(s);
	s[n - 1] = '\n';
	return r;
}

static void
check(const char *in, size_t n, const char *want, const char *what)
{
	char *got = moat_escape(in, n);

	is_str(got, want, "%s", what);
	ok(got != NULL && terminal_safe(got), "%s: nothing raw", what);
	free(got);
}

/* moatd's log: a message quoting sandbox text stays one safe line. */
static void
test_log(void)
{
	char out[4096] = { 0 };
	int p[2], saved;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC) != 0)
		return;
	saved = dup(STDERR_FILENO);
	dup2(p[1], STDERR_FILENO);
	moat_log_init("test", MOAT_LOG_INFO);
	log_info("intent: %s", "\x1b]0;pwned\x07\x1b[8mx\nfake line");
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(p[1]);
	n = read(p[0], out, sizeof(out) - 1);
	close(p[0]);
	out[n > 0 ? n : 0] = '\0';
	like_str(out, "intent: \\x1b]0;pwned\\x07\\x1b[8mx\\x0afake line\n",
	    "log: control bytes escaped");
	ok(n > 0 && terminal_safe_line(out), "log: one line, nothing raw");
}

int
main(void)
{
	char buf[16], *s;
	unsigned char all[256];

	check("/usr/bin/curl", 13, "/usr/bin/curl", "plain text is kept");
	check("caf\xc3\xa9 \xe2\x9c\x93", 9, "caf\xc3\xa9 \xe2\x9c\x93",
	    "printable UTF-8 is kept");
	check("a\\b", 3, "a\\b", "a backslash is kept");
	check("\x1b[8mhidden\x1b[0m", 14, "\\x1b[8mhidden\\x1b[0m",
	    "ESC sequences are visible");
	check("\x1b]0;pwned\x07", 10, "\\x1b]0;pwned\\x07",
	    "an OSC title sequence is visible");
	check("a\nb\rc\td", 7, "a\\x0ab\\x0dc\\x09d",
	    "newline, CR and tab cannot forge lines");
	check("x\x7f", 2, "x\\x7f", "DEL");
	check("\xc2\x9b" "31m", 5, "\\u009b31m", "C1 CSI encoded as UTF-8");
	check("\xc2\x85", 2, "\\u0085", "C1 NEL encoded as UTF-8");
	check("\x9b" "31m", 4, "\\x9b31m", "a raw C1 byte");
	check("/tmp/\xff\xfe/curl", 12, "/tmp/\\xff\\xfe/curl",
	    "bytes that are not UTF-8");
	check("\xe2\x80\xae" "txt.exe", 10, "\\u202etxt.exe",
	    "a bidi override");
	/* Invisible in a terminal, so what is shown is not what is named:
	 * a binary path, a host, text hidden inside an agent's summary. */
	check("/usr/bin/git\xf3\xa0\x81\xa1", 16,
	    "/usr/bin/git\\U000e0061", "a tag character (U+E0061)");
	check("a\xf3\xa0\x84\x80", 5, "a\\U000e0100",
	    "a variation selector supplement (U+E0100)");
	check("gi\xc2\xadt", 5, "gi\\u00adt", "a soft hyphen");
	check("a\xef\xb8\x8f", 4, "a\\ufe0f", "a variation selector");
	check("\xe3\x85\xa4", 3, "\\u3164", "a Hangul filler");
	check("a\xef\xbf\xb9" "b\xef\xbf\xbb" "c", 9, "a\\ufff9b\\ufffbc",
	    "interlinear annotation marks");
	check("\xcd\x8f", 2, "\\u034f", "a combining grapheme joiner");
	check("\xf0\x9b\xb2\xa0", 4, "\\U0001bca0",
	    "a shorthand format control");
	check("\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80",
	    "an emoji is kept");
	check("\xed\xa0\x80", 3, "\\xed\\xa0\\x80", "a UTF-16 surrogate");
	check("\xc0\xaf", 2, "\\xc0\\xaf", "an overlong encoding");
	check("\xe2\x82", 2, "\\xe2\\x82", "a character cut short");
	check("a\0b", 3, "a\\x00b", "a NUL");
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	s = moat_escape((const char *)all, sizeof(all));
	ok(s != NULL && terminal_safe(s), "every byte value: nothing raw");
	ok(s != NULL && strlen(s) <= sizeof(all) * MOAT_ESCAPE_RATIO,
	    "within MOAT_ESCAPE_RATIO");
	free(s);
	s = moat_escape_str(NULL);
	is_str(s, "", "NULL is empty");
	free(s);

	ok(!moat_escape_buf("ab\x1b", 3, buf, 6), "a cut is reported");
	is_str(buf, "ab", "never inside an escape");
	ok(moat_escape_buf("ab\x1b", 3, buf, 7), "exact fit");
	is_str(buf, "ab\\x1b", "and complete");
	ok(moat_escape_clean("/usr/bin/curl", 13), "clean text");
	ok(!moat_escape_clean("a\xff", 2), "not UTF-8 is not clean");

	s = moat_escape_json("{\n  \"r\": \"a\x7f\xc2\x9b\xe2\x80\xae\x1b\"\n}");
	is_str(s, "{\n  \"r\": \"a\\u007f\\u009b\\u202e\\u001b\"\n}",
	    "JSON: the same characters as JSON escapes, layout kept");
	free(s);
	s = moat_escape_json("[\"git\xf3\xa0\x81\xa1\xc2\xad\"]");
	is_str(s, "[\"git\\udb40\\udc61\\u00ad\"]",
	    "JSON: a character beyond U+FFFF as a surrogate pair");
	free(s);
	s = moat_escape_json("[\"\xff\"]");
	is_str(s, "[\"\\ufffd\"]", "JSON: a byte that is not UTF-8");
	free(s);
	test_log();
	return done_testing();
}
