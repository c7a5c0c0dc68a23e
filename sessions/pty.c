#include <sys/ioctl.h>

#include <errno.h>
#include <pty.h>
#include <termios.h>
#include <unistd.h>

#include "common/util.h"
#include "sessions/session.h"

static void
to_kernel(const struct moat_winsize *ws, struct winsize *w)
{
	w->ws_row = ws->rows;
	w->ws_col = ws->cols;
	w->ws_xpixel = ws->xpix;
	w->ws_ypixel = ws->ypix;
}

int
moat_pty_setup(int m, int s, const struct moat_winsize *ws,
    struct moat_cause *cause)
{
	struct termios tio;
	struct winsize w = { .ws_row = 24, .ws_col = 80 };

	if (ws != NULL && ws->rows > 0 && ws->cols > 0)
		to_kernel(ws, &w);
	if (moat_fd_cloexec(m) != 0 || moat_fd_cloexec(s) != 0 ||
	    moat_fd_nonblock(m) != 0 || ioctl(m, TIOCSWINSZ, &w) == -1) {
		moat_cause_errno(cause, "pty setup");
		return MOAT_ERR_SYSTEM;
	}
	/*
	 * The pty-req modes are not exposed by libssh 0.10, so set what
	 * clients assume: DEL erases, CR becomes NL, UTF-8 aware erase.
	 */
	if (tcgetattr(s, &tio) == 0) {
		tio.c_cc[VERASE] = 0x7f;
		tio.c_iflag |= ICRNL | IUTF8;
		(void)tcsetattr(s, TCSANOW, &tio);
	}
	return MOAT_OK;
}

int
moat_pty_open(const struct moat_winsize *ws, int *master, int *slave,
    struct moat_cause *cause)
{
	int m = -1, s = -1;

	if (openpty(&m, &s, NULL, NULL, NULL) == -1) {
		moat_cause_errno(cause, "openpty");
		return MOAT_ERR_SYSTEM;
	}
	/* openpty has no flag; nothing forks before setup marks them. */
	if (moat_pty_setup(m, s, ws, cause) != 0) {
		moat_close(m);
		moat_close(s);
		return MOAT_ERR_SYSTEM;
	}
	*master = m;
	*slave = s;
	return MOAT_OK;
}

int
moat_pty_resize(int master, const struct moat_winsize *ws)
{
	struct winsize w;

	if (ws->rows == 0 || ws->cols == 0)
		return MOAT_ERR_INVALID;
	to_kernel(ws, &w);
	if (ioctl(master, TIOCSWINSZ, &w) == -1)
		return MOAT_ERR_SYSTEM;
	return MOAT_OK;
}
