/* Token pieces and flags: what each token id spells, visible and raw. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static _Thread_local char last_error[256];

int ec_fail(int code, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, args);
    va_end(args);
    return code;
}

const char *ec_last_error(void) { return last_error; }

ec_vocab *ec_vocab_new(int32_t n_vocab) {
    if (n_vocab <= 0) {
        ec_fail(EC_ERR_ARGUMENT, "n_vocab must be > 0, got %d", n_vocab);
        return NULL;
    }
    ec_vocab *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->n_vocab = n_vocab;
    v->text_offset = calloc((size_t)n_vocab, sizeof *v->text_offset);
    v->text_len = calloc((size_t)n_vocab, sizeof *v->text_len);
    v->raw_offset = calloc((size_t)n_vocab, sizeof *v->raw_offset);
    v->raw_len = calloc((size_t)n_vocab, sizeof *v->raw_len);
    v->flags = calloc((size_t)n_vocab, sizeof *v->flags);
    v->end_of_generation = calloc((size_t)n_vocab, sizeof *v->end_of_generation);
    v->cap_bytes = 8 * (int64_t)n_vocab;
    v->bytes = malloc((size_t)v->cap_bytes);
    if (!v->text_offset || !v->text_len || !v->raw_offset || !v->raw_len || !v->flags ||
        !v->end_of_generation || !v->bytes) {
        ec_vocab_free(v);
        ec_fail(EC_ERR_MEMORY, "out of memory for a vocabulary of %d tokens", n_vocab);
        return NULL;
    }
    return v;
}

void ec_vocab_free(ec_vocab *v) {
    if (!v) return;
    free(v->text_offset);
    free(v->text_len);
    free(v->raw_offset);
    free(v->raw_len);
    free(v->flags);
    free(v->end_of_generation);
    free(v->sorted);
    free(v->bytes);
    free(v);
}

int32_t ec_vocab_size(const ec_vocab *v) { return v ? v->n_vocab : 0; }

static int64_t append_bytes(ec_vocab *v, const char *data, int32_t len) {
    if (v->n_bytes + len > v->cap_bytes) {
        int64_t cap = v->cap_bytes * 2 + len;
        char *grown = realloc(v->bytes, (size_t)cap);
        if (!grown) return -1;
        v->bytes = grown;
        v->cap_bytes = cap;
    }
    int64_t offset = v->n_bytes;
    if (len > 0) memcpy(v->bytes + offset, data, (size_t)len);
    v->n_bytes += len;
    return offset;
}

int ec_vocab_set_token(ec_vocab *v, int32_t token, const char *text, int32_t text_len,
                       const char *raw, int32_t raw_len, int32_t flags) {
    if (!v) return ec_fail(EC_ERR_ARGUMENT, "vocabulary is NULL");
    if (token < 0 || token >= v->n_vocab)
        return ec_fail(EC_ERR_ARGUMENT, "token %d outside the vocabulary [0, %d)", token, v->n_vocab);
    if (text_len < 0 || raw_len < 0 || (text_len > 0 && !text) || (raw_len > 0 && !raw))
        return ec_fail(EC_ERR_ARGUMENT, "token %d: bad piece lengths", token);
    if (flags & ~(EC_TOKEN_END_OF_GENERATION | EC_TOKEN_SPECIAL))
        return ec_fail(EC_ERR_ARGUMENT, "token %d: unknown flags %d", token, flags);
    free(v->sorted); /* the index is stale until ec_vocab_finalize */
    v->sorted = NULL;
    v->n_sorted = 0;
    int64_t text_offset = append_bytes(v, text, text_len);
    int64_t raw_offset = text_offset < 0 ? -1 : append_bytes(v, raw, raw_len);
    if (raw_offset < 0) return ec_fail(EC_ERR_MEMORY, "out of memory for token pieces");
    v->text_offset[token] = text_offset;
    v->text_len[token] = text_len;
    v->raw_offset[token] = raw_offset;
    v->raw_len[token] = raw_len;

    bool was_eog = v->flags[token] & EC_TOKEN_END_OF_GENERATION;
    bool is_eog = flags & EC_TOKEN_END_OF_GENERATION;
    v->flags[token] = flags;
    if (is_eog && !was_eog) {
        v->end_of_generation[v->n_end_of_generation++] = token;
    } else if (was_eog && !is_eog) {
        for (int32_t i = 0; i < v->n_end_of_generation; i++) {
            if (v->end_of_generation[i] == token) {
                v->end_of_generation[i] = v->end_of_generation[--v->n_end_of_generation];
                break;
            }
        }
    }
    return EC_OK;
}

const char *ec_vocab_piece(const ec_vocab *v, int32_t token, int32_t raw, int32_t *len) {
    if (!v || token < 0 || token >= v->n_vocab) {
        ec_fail(EC_ERR_ARGUMENT, "token %d outside the vocabulary", token);
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = raw ? v->raw_len[token] : v->text_len[token];
    return v->bytes + (raw ? v->raw_offset[token] : v->text_offset[token]);
}

int32_t ec_vocab_flags(const ec_vocab *v, int32_t token) {
    if (!v || token < 0 || token >= v->n_vocab)
        return ec_fail(EC_ERR_ARGUMENT, "token %d outside the vocabulary", token);
    return v->flags[token];
}

/* ---- sorted index of visible pieces ------------------------------------------ */

static _Thread_local const ec_vocab *sorting_vocab; /* qsort has no context argument */

static int compare_bytes(const char *a, int32_t la, const char *b, int32_t lb) {
    int c = memcmp(a, b, (size_t)(la < lb ? la : lb));
    return c != 0 ? c : (la > lb) - (la < lb);
}

static int compare_pieces(const void *pa, const void *pb) {
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb, la, lb;
    const char *x = ec_piece(sorting_vocab, a, &la), *y = ec_piece(sorting_vocab, b, &lb);
    int c = compare_bytes(x, la, y, lb);
    return c != 0 ? c : (a > b) - (a < b);
}

int ec_vocab_finalize(ec_vocab *v) {
    if (!v) return ec_fail(EC_ERR_ARGUMENT, "vocabulary is NULL");
    int32_t *sorted = malloc((size_t)v->n_vocab * sizeof *sorted);
    if (!sorted) return ec_fail(EC_ERR_MEMORY, "out of memory for the vocabulary index");
    int32_t n = 0;
    for (int32_t t = 0; t < v->n_vocab; t++)
        if (v->text_len[t] > 0) sorted[n++] = t;
    sorting_vocab = v;
    qsort(sorted, (size_t)n, sizeof *sorted, compare_pieces);
    free(v->sorted);
    v->sorted = sorted;
    v->n_sorted = n;
    return EC_OK;
}

void ec_vocab_find(const ec_vocab *v, const char *bytes, int32_t len, int prefix, int32_t *first,
                   int32_t *last) {
    /* lower bound of `bytes`, then the run of pieces equal to / starting with it */
    int32_t lo = 0, hi = v->n_sorted;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2, lm;
        const char *piece = ec_piece(v, v->sorted[mid], &lm);
        if (compare_bytes(piece, lm, bytes, len) < 0) lo = mid + 1;
        else hi = mid;
    }
    int32_t end = lo;
    while (end < v->n_sorted) {
        int32_t lm;
        const char *piece = ec_piece(v, v->sorted[end], &lm);
        bool match = prefix ? (lm >= len && memcmp(piece, bytes, (size_t)len) == 0)
                            : (lm == len && memcmp(piece, bytes, (size_t)len) == 0);
        if (!match) break;
        end++;
    }
    *first = lo;
    *last = end;
}
