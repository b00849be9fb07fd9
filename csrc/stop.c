/*
 * Stop sequences: an Aho-Corasick automaton over bytes, so several stop
 * strings are matched at once, one table lookup per byte, across any token
 * boundaries. The automaton's state also says how many trailing bytes could
 * still grow into a stop sequence: text before them is final (streaming).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define EC_MAX_STOP_STATES (1 << 20)

struct ec_stop_matcher {
    int32_t n_states;
    int32_t *next;      /* n_states x 256 transitions (failure links folded in) */
    int32_t *depth;     /* bytes from the root: the pending prefix length */
    int32_t *match_len; /* longest stop string ending in this state, 0 if none */
    int32_t state;
    int64_t fed;        /* bytes fed so far */
};

void ec_stop_matcher_free(ec_stop_matcher *m) {
    if (!m) return;
    free(m->next);
    free(m->depth);
    free(m->match_len);
    free(m);
}

ec_stop_matcher *ec_stop_matcher_new(const char *bytes, const int32_t *lengths, int32_t n) {
    if (n < 0 || (n > 0 && (!bytes || !lengths))) {
        ec_fail(EC_ERR_ARGUMENT, "stop sequences: bad arguments (n=%d)", n);
        return NULL;
    }
    int64_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        if (lengths[i] <= 0) {
            ec_fail(EC_ERR_ARGUMENT, "stop sequence %d is empty", i);
            return NULL;
        }
        total += lengths[i];
    }
    if (total + 1 > EC_MAX_STOP_STATES) {
        ec_fail(EC_ERR_ARGUMENT, "stop sequences are %lld bytes in all, more than %d",
                (long long)total, EC_MAX_STOP_STATES - 1);
        return NULL;
    }
    int32_t capacity = (int32_t)total + 1;
    ec_stop_matcher *m = calloc(1, sizeof *m);
    int32_t *fail = malloc((size_t)capacity * sizeof *fail);
    int32_t *queue = malloc((size_t)capacity * sizeof *queue);
    if (m) {
        m->next = malloc((size_t)capacity * 256 * sizeof *m->next);
        m->depth = calloc((size_t)capacity, sizeof *m->depth);
        m->match_len = calloc((size_t)capacity, sizeof *m->match_len);
    }
    if (!m || !fail || !queue || !m->next || !m->depth || !m->match_len) {
        free(fail);
        free(queue);
        ec_stop_matcher_free(m);
        ec_fail(EC_ERR_MEMORY, "out of memory for the stop sequences");
        return NULL;
    }
    memset(m->next, 0xff, (size_t)capacity * 256 * sizeof *m->next); /* -1: no edge yet */
    m->n_states = 1;

    /* Trie of the stop strings. */
    const unsigned char *p = (const unsigned char *)bytes;
    for (int32_t i = 0; i < n; i++) {
        int32_t s = 0;
        for (int32_t j = 0; j < lengths[i]; j++, p++) {
            int32_t *edge = &m->next[s * 256 + *p];
            if (*edge < 0) {
                *edge = m->n_states;
                m->depth[m->n_states] = m->depth[s] + 1;
                m->n_states++;
            }
            s = *edge;
        }
        if (lengths[i] > m->match_len[s]) m->match_len[s] = lengths[i];
    }

    /* Breadth-first: failure links, folded into complete transitions. */
    int32_t head = 0, tail = 0;
    for (int c = 0; c < 256; c++) {
        int32_t t = m->next[c];
        if (t < 0) {
            m->next[c] = 0;
        } else {
            fail[t] = 0;
            queue[tail++] = t;
        }
    }
    while (head < tail) {
        int32_t s = queue[head++];
        if (m->match_len[fail[s]] > m->match_len[s]) m->match_len[s] = m->match_len[fail[s]];
        for (int c = 0; c < 256; c++) {
            int32_t t = m->next[s * 256 + c];
            if (t < 0) {
                m->next[s * 256 + c] = m->next[fail[s] * 256 + c];
            } else {
                fail[t] = m->next[fail[s] * 256 + c];
                queue[tail++] = t;
            }
        }
    }
    free(fail);
    free(queue);
    return m;
}

int64_t ec_stop_matcher_feed(ec_stop_matcher *m, const char *bytes, int64_t len) {
    if (!m || len < 0 || (len > 0 && !bytes))
        return ec_fail(EC_ERR_ARGUMENT, "stop matcher: bad arguments");
    const unsigned char *p = (const unsigned char *)bytes;
    int64_t earliest = EC_NONE;
    int32_t s = m->state;
    for (int64_t j = 0; j < len; j++) {
        s = m->next[s * 256 + p[j]];
        if (m->match_len[s] > 0) {
            /* The longest stop ending here starts earliest. */
            int64_t start = m->fed + j + 1 - m->match_len[s];
            if (earliest == EC_NONE || start < earliest) earliest = start;
        }
    }
    m->state = s;
    m->fed += len;
    return earliest;
}

int64_t ec_stop_matcher_pending(const ec_stop_matcher *m) {
    if (!m) return ec_fail(EC_ERR_ARGUMENT, "stop matcher is NULL");
    return m->depth[m->state];
}
