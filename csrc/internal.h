/* Definitions shared by the C files; not part of the Python-facing API. */
#ifndef EDGECOMPLETE_INTERNAL_H
#define EDGECOMPLETE_INTERNAL_H

#include "edgecomplete.h"

/* Record the message ec_last_error() returns; always returns `code`. */
int ec_fail(int code, const char *fmt, ...);

struct ec_vocab {
    int32_t n_vocab;
    int64_t *text_offset; /* into bytes */
    int32_t *text_len;
    int64_t *raw_offset;
    int32_t *raw_len;
    int32_t *flags;
    char *bytes;
    int64_t n_bytes, cap_bytes;
    int32_t *end_of_generation; /* ids flagged EC_TOKEN_END_OF_GENERATION */
    int32_t n_end_of_generation;
    int32_t *sorted;            /* ids with a visible piece, by piece bytes (ec_vocab_finalize) */
    int32_t n_sorted;
};

/* Visible piece of a token (no checks: callers validated the id). */
static inline const char *ec_piece(const ec_vocab *v, int32_t token, int32_t *len) {
    *len = v->text_len[token];
    return v->bytes + v->text_offset[token];
}

/* Range [*first, *last) of v->sorted whose pieces equal `bytes` (prefix == 0)
 * or start with it (prefix != 0). */
void ec_vocab_find(const ec_vocab *v, const char *bytes, int32_t len, int prefix, int32_t *first,
                   int32_t *last);

struct ec_workspace {
    int32_t n_vocab;
    int32_t *ids;     /* top_k heap: ids */
    float *values;    /* top_k heap: logits */
    int32_t *kept;    /* ids that survive top_k / top_p, in draw order */
    double *weights;  /* exp(l - max) of the kept ids */
    float *row;       /* a sequence's copy of a logits row */
    unsigned char *mark; /* per-token flags, all zero between calls */
};

/* The k best ids by (logit desc, id asc), sorted, into out; returns how many
 * (fewer when fewer logits are finite). Uses ws->ids / ws->values. */
int32_t ec_top_k(const float *logits, int32_t n_vocab, int32_t k, ec_workspace *ws, int32_t *out);

#endif
