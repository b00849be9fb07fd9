/*
 * completion_bias_inclusion / _exclusion as constraints over the token pieces.
 *
 * The text generated so far must stay a prefix of an inclusion option, so the
 * tokens allowed next are those whose visible piece is a prefix of what remains
 * of a matching option: one exact lookup per remaining length in the sorted
 * piece index. An excluded string bans the tokens whose piece starts with what
 * remains of it: one prefix range of the index.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

static bool starts_with(const char *text, int64_t n_text, const char *prefix, int64_t n_prefix) {
    /* memcmp of 0 bytes is still undefined with a NULL pointer (an empty text has none) */
    return n_text >= n_prefix && (n_prefix == 0 || memcmp(text, prefix, (size_t)n_prefix) == 0);
}

/* Mark (in ws->mark, listing them in ws->kept) the tokens of v->sorted[first, last). */
static int32_t mark_range(const ec_vocab *v, int32_t first, int32_t last, ec_workspace *ws,
                          int32_t n_marked) {
    for (int32_t j = first; j < last; j++) {
        int32_t t = v->sorted[j];
        if (!ws->mark[t]) {
            ws->mark[t] = 1;
            ws->kept[n_marked++] = t;
        }
    }
    return n_marked;
}

int ec_apply_completion_bias(float *logits, const ec_vocab *v, const char *generated,
                             int64_t n_generated, const char *options, const int32_t *lengths,
                             int32_t n_options, bool inclusion, bool first_token_only,
                             ec_workspace *ws) {
    if (!logits || !v || !ws || ws->n_vocab < v->n_vocab)
        return ec_fail(EC_ERR_ARGUMENT, "completion bias: logits, vocabulary and workspace are required");
    if (!v->sorted) return ec_fail(EC_ERR_ARGUMENT, "completion bias: the vocabulary is not finalized");
    if (n_generated < 0 || (n_generated > 0 && !generated) || n_options < 0 ||
        (n_options > 0 && (!options || !lengths)))
        return ec_fail(EC_ERR_ARGUMENT, "completion bias: bad arguments");
    for (int32_t i = 0; i < n_options; i++)
        if (lengths[i] <= 0) return ec_fail(EC_ERR_ARGUMENT, "completion bias option %d is empty", i);

    int32_t n_marked = 0, first, last;
    const char *option = options;
    for (int32_t i = 0; i < n_options; option += lengths[i], i++) {
        /* Only options the text is still on the way to matter. */
        if (!starts_with(option, lengths[i], generated, n_generated) || lengths[i] == n_generated)
            continue;
        const char *rest = option + n_generated;
        int32_t n_rest = lengths[i] - (int32_t)n_generated;
        if (inclusion || first_token_only) {
            for (int32_t len = 1; len <= n_rest; len++) { /* pieces that are prefixes of rest */
                ec_vocab_find(v, rest, len, 0, &first, &last);
                n_marked = mark_range(v, first, last, ws, n_marked);
            }
        }
        if (!inclusion) { /* pieces that start with rest complete the excluded string */
            ec_vocab_find(v, rest, n_rest, 1, &first, &last);
            n_marked = mark_range(v, first, last, ws, n_marked);
        }
    }
    if (inclusion) {
        if (n_marked == 0) /* nothing continues an option: let the text end */
            for (int32_t j = 0; j < v->n_end_of_generation; j++)
                if (!ws->mark[v->end_of_generation[j]]) {
                    ws->mark[v->end_of_generation[j]] = 1;
                    ws->kept[n_marked++] = v->end_of_generation[j];
                }
        for (int32_t t = 0; t < v->n_vocab; t++)
            if (!ws->mark[t]) logits[t] = -INFINITY;
    } else {
        for (int32_t j = 0; j < n_marked; j++) logits[ws->kept[j]] = -INFINITY;
    }
    for (int32_t j = 0; j < n_marked; j++) ws->mark[ws->kept[j]] = 0;
    return EC_OK;
}
