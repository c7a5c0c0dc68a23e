/* Escaping of sandbox text for the operator (common/escape.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/escape.h"

/*
 * Decode one UTF-8 character at s (n > 0 bytes left): its length, and
 * its code point in *cp; 0 when s does not start a valid character.
 */
static size_t
utf8_char(const unsigned char *s, size_t n, unsigned *cp)
{
	unsigned c = s[0], lo = 0x80, hi = 0xbf;
	size_t len;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		c &= 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		lo = c == 0xe0 ? 0xa0 : 0x80;
		hi = c == 0xed ? 0x9f : 0xbf; /* no surrogates */
		c &= 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		lo = c == 0xf0 ? 0x90 : 0x80;
		hi = c == 0xf4 ? 0x8f : 0xbf; /* at most U+10FFFF */
		c &= 0x07;
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if (i > 1 && (s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	*cp = c;
	return len;
}

/*
 * Characters that are invisible yet reorder, hide or break text: C1
 * controls, Unicode's default-ignorable code points (bidi controls,
 * zero-width characters, soft hyphen, fillers, variation selectors, tag
 * characters), the line and paragraph separators and the interlinear
 * annotation marks.
 */
static bool
is_format(unsigned cp)
{
	static const struct {
		unsigned lo, hi;
	} r[] = {
		{ 0x0080, 0x009f }, { 0x00ad, 0x00ad }, { 0x034f, 0x034f },
		{ 0x061c, 0x061c }, { 0x115f, 0x1160 }, { 0x17b4, 0x17b5 },
		{ 0x180b, 0x180f }, { 0x200b, 0x200f }, { 0x2028, 0x202e },
		{ 0x2060, 0x206f }, { 0x3164, 0x3164 }, { 0xfe00, 0xfe0f },
		{ 0xfeff, 0xfeff }, { 0xffa0, 0xffa0 }, { 0xfff0, 0xfffb },
		{ 0x1bca0, 0x1bca3 }, { 0x1d173, 0x1d17a },
		{ 0xe0000, 0xe0fff },
	};

	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++)
		if (cp >= r[i].lo && cp <= r[i].hi)
			return true;
	return false;
}

#define ESC_MAX 16 /* the longest escape, "\U000e0061", and its NUL */

/*
 * The escape for the character at s, in esc (ESC_MAX bytes), or "" when
 * it is kept; *len is how many input bytes it covers.
 */
static void
escape_one(const unsigned char *s, size_t n, char *esc, size_t *len)
{
	unsigned cp = 0;
	size_t k = utf8_char(s, n, &cp);

	esc[0] = '\0';
	if (k == 0) {
		snprintf(esc, ESC_MAX, "\\x%02x", s[0]);
		*len = 1;
		return;
	}
	*len = k;
	if (cp < 0x20 || cp == 0x7f)
		snprintf(esc, ESC_MAX, "\\x%02x", cp & 0xff);
	else if (is_format(cp) && cp > 0xffff)
		snprintf(esc, ESC_MAX, "\\U%08x", cp);
	else if (is_format(cp))
		snprintf(esc, ESC_MAX, "\\u%04x", cp & 0xffff);
}

bool
moat_escape_buf(const char *s, size_t n, char *out, size_t outlen)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0, i = 0, len, w;
	char esc[ESC_MAX];

	if (outlen == 0)
		return n == 0;
	while (i < n) {
		escape_one(p + i, n - i, esc, &len);
		w = esc[0] != '\0' ? strlen(esc) : len;
		if (o + w >= outlen) {
			out[o] = '\0';
			return false;
		}
		memcpy(out + o, esc[0] != '\0' ? esc : s + i, w);
		o += w;
		i += len;
	}
	out[o] = '\0';
	return true;
}

char *
moat_escape(const char *s, size_t n)
{
	size_t cap = n * MOAT_ESCAPE_RATIO + 1;
	char *out;

	if ((out = malloc(cap)) == NULL)
		return NULL;
	moat_escape_buf(s, n, out, cap);
	return out;
}

char *
moat_escape_str(const char *s)
{
	return s != NULL ? moat_escape(s, strlen(s)) : strdup("");
}

bool
moat_escape_clean(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, len;
	char esc[ESC_MAX];

	while (i < n) {
		escape_one(p + i, n - i, esc, &len);
		if (esc[0] != '\0')
			return false;
		i += len;
	}
	return true;
}

size_t
moat_utf8_fix(const char *s, size_t n, char *out, size_t outlen, bool *cut)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0, i = 0, k, w, fixed = 0;
	unsigned cp;
	char esc[8];

	if (cut != NULL)
		*cut = false;
	if (outlen == 0)
		return 0;
	while (i < n) {
		if ((k = utf8_char(p + i, n - i, &cp)) == 0) {
			snprintf(esc, sizeof(esc), "\\x%02x", p[i]);
			w = 4;
		} else {
			w = k;
		}
		if (o + w >= outlen) {
			if (cut != NULL)
				*cut = true;
			break;
		}
		memcpy(out + o, k == 0 ? esc : s + i, w);
		o += w;
		fixed += k == 0;
		i += k == 0 ? 1 : k;
	}
	out[o] = '\0';
	return fixed;
}

bool
moat_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k;
	unsigned cp;

	while (i < n) {
		if ((k = utf8_char(p + i, n - i, &cp)) == 0)
			return false;
		i += k;
	}
	return true;
}

char *
moat_escape_json(const char *text)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t n = strlen(text), i = 0, o = 0, k;
	unsigned cp = 0;
	char *out;

	/* A byte becomes at most 6 ("\u00NN", or "\ufffd" for a bad one). */
	if ((out = malloc(n * 6 + 1)) == NULL)
		return NULL;
	while (i < n) {
		if ((k = utf8_char(p + i, n - i, &cp)) == 0) {
			memcpy(out + o, "\\ufffd", 6);
			o += 6;
			i++;
			continue;
		}
		if (cp > 0xffff && is_format(cp)) {
			/* JSON spells it as a UTF-16 surrogate pair. */
			snprintf(out + o, 13, "\\u%04x\\u%04x",
			    (0xd800 + ((cp - 0x10000) >> 10)) & 0xffff,
			    (0xdc00 + ((cp - 0x10000) & 0x3ff)) & 0xffff);
			o += 12;
		} else if ((cp < 0x20 && cp != '\t' && cp != '\n' &&
		    cp != '\r') || cp == 0x7f || is_format(cp)) {
			snprintf(out + o, 7, "\\u%04x", cp & 0xffff);
			o += 6;
		} else {
			memcpy(out + o, text + i, k);
			o += k;
		}
		i += k;
	}
	out[o] = '\0';
	return out;
}
