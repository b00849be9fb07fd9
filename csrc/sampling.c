/*
 * Sampling stages on one row of logits, in the order a step applies them:
 * logit bias -> masks -> penalties -> temperature -> top_k -> top_p -> draw.
 *
 * Numerics are pinned so that a NumPy reference can reproduce every result:
 * stages that modify logits work in float32; probabilities are double
 * weights w = exp(l - max) summed left to right in a stated order.
 * A logit that is -inf or NaN is never a candidate.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- random stream ----------------------------------------------------- */

static uint64_t mix64(uint64_t z) { /* splitmix64 finaliser */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

double ec_uniform(uint64_t seed, uint64_t step) {
    uint64_t key = mix64(seed ^ 0x9E3779B97F4A7C15ULL);
    uint64_t bits = mix64(key ^ mix64(0xD1B54A32D192ED03ULL * (step + 1)));
    return (double)(bits >> 11) * 0x1.0p-53;
}

/* ---- workspace: buffers allocated once, never in the hot path ----------- */

ec_workspace *ec_workspace_new(int32_t n_vocab) {
    if (n_vocab <= 0) {
        ec_fail(EC_ERR_ARGUMENT, "n_vocab must be > 0, got %d", n_vocab);
        return NULL;
    }
    ec_workspace *ws = calloc(1, sizeof *ws);
    if (!ws) return NULL;
    ws->n_vocab = n_vocab;
    ws->ids = malloc((size_t)n_vocab * sizeof *ws->ids);
    ws->values = malloc((size_t)n_vocab * sizeof *ws->values);
    ws->kept = malloc((size_t)n_vocab * sizeof *ws->kept);
    ws->weights = malloc((size_t)n_vocab * sizeof *ws->weights);
    ws->row = malloc((size_t)n_vocab * sizeof *ws->row);
    ws->mark = calloc((size_t)n_vocab, sizeof *ws->mark);
    if (!ws->ids || !ws->values || !ws->kept || !ws->weights || !ws->row || !ws->mark) {
        ec_workspace_free(ws);
        ec_fail(EC_ERR_MEMORY, "out of memory for a workspace of %d tokens", n_vocab);
        return NULL;
    }
    return ws;
}

void ec_workspace_free(ec_workspace *ws) {
    if (!ws) return;
    free(ws->ids);
    free(ws->values);
    free(ws->kept);
    free(ws->weights);
    free(ws->row);
    free(ws->mark);
    free(ws);
}

/* ---- stages that modify logits ------------------------------------------ */

static int check_row(const float *logits, int32_t n_vocab) {
    if (!logits) return ec_fail(EC_ERR_ARGUMENT, "logits is NULL");
    if (n_vocab <= 0) return ec_fail(EC_ERR_ARGUMENT, "n_vocab must be > 0, got %d", n_vocab);
    return EC_OK;
}

static int check_tokens(const int32_t *tokens, int32_t n, int32_t n_vocab, const char *what) {
    if (n < 0) return ec_fail(EC_ERR_ARGUMENT, "%s: negative count %d", what, n);
    if (n > 0 && !tokens) return ec_fail(EC_ERR_ARGUMENT, "%s: tokens is NULL", what);
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= n_vocab)
            return ec_fail(EC_ERR_ARGUMENT, "%s: token %d outside the vocabulary [0, %d)", what,
                           tokens[i], n_vocab);
    return EC_OK;
}

int ec_apply_logit_bias(float *logits, int32_t n_vocab, const int32_t *tokens, const float *bias,
                        int32_t n) {
    int rc = check_row(logits, n_vocab);
    if (rc == EC_OK) rc = check_tokens(tokens, n, n_vocab, "logit_bias");
    if (rc != EC_OK) return rc;
    if (n > 0 && !bias) return ec_fail(EC_ERR_ARGUMENT, "logit_bias: values is NULL");
    for (int32_t i = 0; i < n; i++) logits[tokens[i]] += bias[i];
    return EC_OK;
}

int ec_mask_tokens(float *logits, int32_t n_vocab, const int32_t *tokens, int32_t n) {
    int rc = check_row(logits, n_vocab);
    if (rc == EC_OK) rc = check_tokens(tokens, n, n_vocab, "mask");
    if (rc != EC_OK) return rc;
    for (int32_t i = 0; i < n; i++) logits[tokens[i]] = -INFINITY;
    return EC_OK;
}

/* Sign-safe multiplicative penalty: shrink a positive logit, grow a negative one. */
static float penalise(float logit, float factor) {
    return logit > 0 ? logit / factor : logit * factor;
}

int ec_apply_penalties(float *logits, int32_t n_vocab, const int32_t *tokens, const int32_t *counts,
                       int32_t n, float presence, float frequency, bool multiplicative_presence,
                       bool multiplicative_frequency) {
    int rc = check_row(logits, n_vocab);
    if (rc == EC_OK) rc = check_tokens(tokens, n, n_vocab, "penalties");
    if (rc != EC_OK) return rc;
    if (n > 0 && !counts) return ec_fail(EC_ERR_ARGUMENT, "penalties: counts is NULL");
    if ((multiplicative_presence && !(1.0 + presence > 0)) ||
        (multiplicative_frequency && !(1.0 + frequency > 0)))
        return ec_fail(EC_ERR_ARGUMENT, "multiplicative penalties need 1 + penalty > 0");
    for (int32_t i = 0; i < n; i++)
        if (counts[i] <= 0)
            return ec_fail(EC_ERR_ARGUMENT, "penalties: count %d of token %d must be > 0", counts[i],
                           tokens[i]);
    float presence_factor = (float)(1.0 + (double)presence);
    for (int32_t i = 0; i < n; i++) {
        float l = logits[tokens[i]];
        l = multiplicative_presence ? penalise(l, presence_factor) : l - presence;
        if (multiplicative_frequency)
            l = penalise(l, (float)pow(1.0 + (double)frequency, (double)counts[i]));
        else
            l = l - (float)counts[i] * frequency;
        logits[tokens[i]] = l;
    }
    return EC_OK;
}

int ec_apply_sequence_penalty(float *logits, int32_t n_vocab, const int32_t *context,
                              int32_t n_context, const int32_t *key, int32_t n_key, float penalty,
                              bool multiplicative, ec_workspace *ws) {
    int rc = check_row(logits, n_vocab);
    if (rc == EC_OK) rc = check_tokens(context, n_context, n_vocab, "sequence penalty context");
    if (rc == EC_OK) rc = check_tokens(key, n_key, n_vocab, "sequence penalty key");
    if (rc != EC_OK) return rc;
    if (!ws || ws->n_vocab < n_vocab)
        return ec_fail(EC_ERR_ARGUMENT, "workspace is missing or smaller than n_vocab %d", n_vocab);
    if (n_key < 1) return ec_fail(EC_ERR_ARGUMENT, "sequence penalty key must hold >= 1 token");
    if (multiplicative && !(1.0 + penalty > 0))
        return ec_fail(EC_ERR_ARGUMENT, "multiplicative sequence_penalty needs 1 + s > 0");
    float factor = (float)(1.0 + (double)penalty);
    int32_t n_marked = 0;
    for (int32_t i = 0; i + n_key < n_context; i++) {
        if (memcmp(context + i, key, (size_t)n_key * sizeof *key) != 0) continue;
        int32_t follower = context[i + n_key];
        if (ws->mark[follower]) continue; /* each distinct follower once */
        ws->mark[follower] = 1;
        ws->ids[n_marked++] = follower;
        float l = logits[follower];
        logits[follower] = multiplicative ? penalise(l, factor) : l - penalty;
    }
    for (int32_t j = 0; j < n_marked; j++) ws->mark[ws->ids[j]] = 0;
    return EC_OK;
}

int ec_apply_temperature(float *logits, int32_t n_vocab, float temperature) {
    int rc = check_row(logits, n_vocab);
    if (rc != EC_OK) return rc;
    if (!(temperature > 0) || isinf(temperature))
        return ec_fail(EC_ERR_ARGUMENT, "temperature must be finite and > 0, got %g", temperature);
    for (int32_t i = 0; i < n_vocab; i++) logits[i] = logits[i] / temperature;
    return EC_OK;
}

/* ---- selection ------------------------------------------------------------ */

static bool is_candidate(float l) { return l > -INFINITY; } /* false for -inf and NaN */

/* Total order used everywhere: higher logit first, then lower id. */
static bool ranks_before(float la, int32_t a, float lb, int32_t b) {
    return la > lb || (la == lb && a < b);
}

int32_t ec_argmax(const float *logits, int32_t n_vocab) {
    if (check_row(logits, n_vocab) != EC_OK) return EC_ERR_ARGUMENT;
    int32_t best = EC_NONE;
    float best_logit = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++) {
        if (logits[i] > best_logit) { /* strict: ties keep the lower id */
            best_logit = logits[i];
            best = i;
        }
    }
    return best;
}

static _Thread_local const float *sort_key_logits; /* qsort has no context argument */
static int compare_ranked(const void *pa, const void *pb) {
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    float la = sort_key_logits[a], lb = sort_key_logits[b];
    if (ranks_before(la, a, lb, b)) return -1;
    if (ranks_before(lb, b, la, a)) return 1;
    return 0;
}
static void sort_ranked(const float *logits, int32_t *ids, int32_t n) {
    sort_key_logits = logits;
    qsort(ids, (size_t)n, sizeof *ids, compare_ranked);
}

/* Min-heap of the k best seen so far; the root is the worst of them. */
static void heap_sift_down(int32_t *ids, float *vals, int32_t n, int32_t i) {
    for (;;) {
        int32_t worst = i, l = 2 * i + 1, r = l + 1;
        if (l < n && ranks_before(vals[worst], ids[worst], vals[l], ids[l])) worst = l;
        if (r < n && ranks_before(vals[worst], ids[worst], vals[r], ids[r])) worst = r;
        if (worst == i) return;
        int32_t ti = ids[i]; ids[i] = ids[worst]; ids[worst] = ti;
        float tv = vals[i]; vals[i] = vals[worst]; vals[worst] = tv;
        i = worst;
    }
}

static void heap_sift_up(int32_t *ids, float *vals, int32_t i) {
    while (i > 0) {
        int32_t parent = (i - 1) / 2;
        if (!ranks_before(vals[parent], ids[parent], vals[i], ids[i])) return;
        int32_t ti = ids[i]; ids[i] = ids[parent]; ids[parent] = ti;
        float tv = vals[i]; vals[i] = vals[parent]; vals[parent] = tv;
        i = parent;
    }
}

/* The k best candidates by (logit desc, id asc), sorted, without sorting the
 * vocabulary: one pass keeps a heap of k; ids only grow during the pass, so a
 * later token can only enter by being strictly larger than the heap's worst,
 * and a block of 16 logits is skipped after one vectorisable comparison. */
int32_t ec_top_k(const float *logits, int32_t n_vocab, int32_t k, ec_workspace *ws, int32_t *out) {
    if (k > n_vocab) k = n_vocab;
    int32_t *ids = ws->ids;
    float *vals = ws->values;
    int32_t n = 0, i = 0;
    for (; i < n_vocab && n < k; i++) {
        if (!is_candidate(logits[i])) continue;
        ids[n] = i;
        vals[n] = logits[i];
        heap_sift_up(ids, vals, n);
        n++;
    }
    enum { BLOCK = 16 };
    while (i < n_vocab) {
        float worst = vals[0];
        if (i + BLOCK <= n_vocab) {
            int any = 0;
            for (int j = 0; j < BLOCK; j++) any |= logits[i + j] > worst;
            if (!any) {
                i += BLOCK;
                continue;
            }
        }
        int32_t end = i + BLOCK < n_vocab ? i + BLOCK : n_vocab;
        for (; i < end; i++) {
            if (logits[i] > vals[0]) {
                ids[0] = i;
                vals[0] = logits[i];
                heap_sift_down(ids, vals, n, 0);
            }
        }
    }
    for (int32_t j = 0; j < n; j++) out[j] = ids[j];
    sort_ranked(logits, out, n);
    return n;
}

static double weight(float l, double max_logit) {
    /* exp(l - max), with the max itself exactly 1 (also when max is +inf). */
    return (double)l == max_logit ? 1.0 : exp((double)l - max_logit);
}

/* Smallest prefix of the ranked candidates whose cumulative probability
 * (each weight divided by total, summed in rank order) reaches top_p. */
static int32_t nucleus(const float *logits, const int32_t *ranked, int32_t n, double max_logit,
                       double total, float top_p, bool *reached) {
    double cumulative = 0;
    for (int32_t j = 0; j < n; j++) {
        cumulative += weight(logits[ranked[j]], max_logit) / total;
        if (cumulative >= (double)top_p) {
            *reached = true;
            return j + 1;
        }
    }
    *reached = false;
    return n;
}

int32_t ec_filter(const float *logits, int32_t n_vocab, int32_t top_k, float top_p,
                  ec_workspace *ws, int32_t *kept) {
    int rc = check_row(logits, n_vocab);
    if (rc != EC_OK) return rc;
    if (!ws || ws->n_vocab < n_vocab)
        return ec_fail(EC_ERR_ARGUMENT, "workspace is missing or smaller than n_vocab %d", n_vocab);
    if (!kept) return ec_fail(EC_ERR_ARGUMENT, "kept is NULL");
    if (top_k < 0) return ec_fail(EC_ERR_ARGUMENT, "top_k must be >= 0, got %d", top_k);
    if (!(top_p >= 0 && top_p <= 1))
        return ec_fail(EC_ERR_ARGUMENT, "top_p must be in [0, 1], got %g", top_p);

    bool use_top_k = top_k > 0 && top_k < n_vocab;
    if (!use_top_k && top_p == 0) { /* nothing to filter: every candidate, id order */
        int32_t n = 0;
        for (int32_t i = 0; i < n_vocab; i++)
            if (is_candidate(logits[i])) kept[n++] = i;
        return n;
    }
    if (use_top_k) {
        int32_t n = ec_top_k(logits, n_vocab, top_k, ws, kept);
        if (n == 0 || top_p == 0) return n;
        double max_logit = logits[kept[0]], total = 0;
        for (int32_t j = 0; j < n; j++) total += weight(logits[kept[j]], max_logit);
        bool reached;
        return nucleus(logits, kept, n, max_logit, total, top_p, &reached);
    }

    /* top_p over the whole vocabulary: probabilities normalise over every
     * candidate (summed in id order). Only a token with probability at least
     * (1 - top_p) / (n - 1) can be in the nucleus after its first token
     * (llama2.c's trick), so sort just those; fall back to sorting every
     * candidate when rounding keeps that prefix from reaching top_p. */
    int32_t n_candidates = 0;
    double max_logit = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++) {
        if (!is_candidate(logits[i])) continue;
        n_candidates++;
        if ((double)logits[i] > max_logit) max_logit = logits[i];
    }
    if (n_candidates == 0) return 0;
    double total = 0;
    for (int32_t i = 0; i < n_vocab; i++)
        if (is_candidate(logits[i])) total += weight(logits[i], max_logit);
    double cutoff = n_candidates > 1 ? (1.0 - (double)top_p) / (n_candidates - 1) : 0.0;
    int32_t n = 0;
    for (int32_t i = 0; i < n_vocab; i++)
        if (is_candidate(logits[i]) && weight(logits[i], max_logit) / total >= cutoff) kept[n++] = i;
    bool reached = false;
    if (n > 0) {
        sort_ranked(logits, kept, n);
        n = nucleus(logits, kept, n, max_logit, total, top_p, &reached);
    }
    if (!reached) {
        n = 0;
        for (int32_t i = 0; i < n_vocab; i++)
            if (is_candidate(logits[i])) kept[n++] = i;
        sort_ranked(logits, kept, n);
        n = nucleus(logits, kept, n, max_logit, total, top_p, &reached);
    }
    return n;
}

/* Inverse CDF over the kept tokens in their given order: the first token
 * whose cumulative weight exceeds u * total. */
static int32_t draw(const float *logits, const int32_t *kept, int32_t n, double u, double *w) {
    double max_logit = -INFINITY;
    for (int32_t j = 0; j < n; j++)
        if ((double)logits[kept[j]] > max_logit) max_logit = logits[kept[j]];
    double total = 0;
    for (int32_t j = 0; j < n; j++) {
        w[j] = weight(logits[kept[j]], max_logit);
        total += w[j];
    }
    double target = u * total, cumulative = 0;
    int32_t last_positive = -1;
    for (int32_t j = 0; j < n; j++) {
        if (w[j] <= 0) continue;
        cumulative += w[j];
        last_positive = j;
        if (cumulative > target) return kept[j];
    }
    return last_positive >= 0 ? kept[last_positive] : EC_ERR_NO_CANDIDATES;
}

int32_t ec_sample_row(float *logits, int32_t n_vocab, float temperature, int32_t top_k,
                      float top_p, double u, ec_workspace *ws) {
    int rc = check_row(logits, n_vocab);
    if (rc != EC_OK) return rc;
    if (!(temperature >= 0) || isinf(temperature))
        return ec_fail(EC_ERR_ARGUMENT, "temperature must be finite and >= 0, got %g", temperature);
    if (!(u >= 0 && u < 1)) return ec_fail(EC_ERR_ARGUMENT, "u must be in [0, 1), got %g", u);
    if (!ws || ws->n_vocab < n_vocab)
        return ec_fail(EC_ERR_ARGUMENT, "workspace is missing or smaller than n_vocab %d", n_vocab);

    if (temperature == 0 && top_k <= 1 && top_p == 0) {
        int32_t token = ec_argmax(logits, n_vocab);
        return token >= 0 ? token
                          : ec_fail(EC_ERR_NO_CANDIDATES, "every logit is -inf or NaN");
    }
    /* temperature 0 with top_k > 1 or top_p > 0 samples at temperature 1. */
    if (temperature > 0 && temperature != 1) {
        rc = ec_apply_temperature(logits, n_vocab, temperature);
        if (rc != EC_OK) return rc;
    }
    int32_t n = ec_filter(logits, n_vocab, top_k, top_p, ws, ws->kept);
    if (n < 0) return n;
    int32_t token = draw(logits, ws->kept, n, u, ws->weights);
    return token >= 0 ? token : ec_fail(EC_ERR_NO_CANDIDATES, "every logit is -inf or NaN");
}
