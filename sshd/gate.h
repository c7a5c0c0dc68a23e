/*
 * MaxStartups bookkeeping for the listener (gate.c). Internal to sshd/.
 */
#ifndef MOAT_SSHD_GATE_H
#define MOAT_SSHD_GATE_H

#include <sys/socket.h>

#include <stdbool.h>

#include "sshd/sshd.h"

struct sshd_gate;

int sshd_gate_new(const struct moat_sshd_startups *cfg,
    struct sshd_gate **out);
void sshd_gate_free(struct sshd_gate *g);	/* closes every entry's fd */
/* May a connection from ss start now? (Draws the random drop, if any.) */
bool sshd_gate_admit(const struct sshd_gate *g,
    const struct sockaddr_storage *ss);
/* Count it until fd (its startup pipe) is released; the gate owns fd. */
int sshd_gate_add(struct sshd_gate *g, const struct sockaddr_storage *ss,
    int fd);
/* fd hung up: the connection left pre-auth. false: not ours. */
bool sshd_gate_release(struct sshd_gate *g, int fd);
int sshd_gate_count(const struct sshd_gate *g);

#endif
