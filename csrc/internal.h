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
};

struct ec_workspace {
    int32_t n_vocab;
    int32_t *ids;     /* top_k heap: ids */
    float *values;    /* top_k heap: logits */
    int32_t *kept;    /* ids that survive top_k / top_p, in draw order */
    double *weights;  /* exp(l - max) of the kept ids */
    float *row;       /* a sequence's copy of a shared logits row */
};

#endif
