/*
 * Log-probabilities of the raw model distribution: log p(t) = l[t] - log Z,
 * log Z = max + log(sum exp(l - max)).
 *
 * The sum over the vocabulary runs once per scored row, so it is written to
 * vectorise: a branch-free exp (Cephes' polynomial, 2^k * p(r), relative error
 * about 1e-7) in float lanes, each block of lanes added into a double.
 */
#include <math.h>
#include <string.h>

#include "internal.h"

enum { LANES = 8, BLOCK = 64 };

/* exp(x) for x <= 0; below -87 it returns about exp(-87), negligible in a sum. */
static inline float exp_nonpositive(float x) {
    x = x < -87.0f ? -87.0f : x;
    float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round(x / ln 2) */
    float r = x - k * 0.693359375f - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)k + 127) << 23; /* 2^k */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static float row_max(const float *x, int32_t n) {
    float lanes[LANES];
    for (int l = 0; l < LANES; l++) lanes[l] = x[0];
    int32_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) lanes[l] = x[i + l] > lanes[l] ? x[i + l] : lanes[l];
    float m = lanes[0];
    for (int l = 1; l < LANES; l++) m = lanes[l] > m ? lanes[l] : m;
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

double ec_log_normalizer(const float *logits, int32_t n_vocab) {
    if (!logits || n_vocab <= 0) return NAN;
    float m = row_max(logits, n_vocab);
    double total = 0;
    int32_t i = 0;
    for (; i + BLOCK <= n_vocab; i += BLOCK) {
        float lanes[LANES] = {0};
        for (int j = 0; j < BLOCK; j += LANES)
            for (int l = 0; l < LANES; l++) lanes[l] += exp_nonpositive(logits[i + j + l] - m);
        float block = 0;
        for (int l = 0; l < LANES; l++) block += lanes[l];
        total += block;
    }
    for (; i < n_vocab; i++) total += exp_nonpositive(logits[i] - m);
    return (double)m + log(total);
}

int ec_score_rows(const float *logits, int32_t n_rows, int32_t n_vocab, const int32_t *targets,
                  int32_t top_n, ec_workspace *ws, float *target_logprobs, int32_t *top_tokens,
                  float *top_logprobs) {
    if (!logits || n_rows < 0 || n_vocab <= 0)
        return ec_fail(EC_ERR_ARGUMENT, "score rows: bad logits (%d rows of %d)", n_rows, n_vocab);
    if (top_n < 0 || top_n > EC_MAX_LOG_PROBS)
        return ec_fail(EC_ERR_ARGUMENT, "top_n must be in [0, %d], got %d", EC_MAX_LOG_PROBS, top_n);
    if (!ws || ws->n_vocab < n_vocab)
        return ec_fail(EC_ERR_ARGUMENT, "workspace is missing or smaller than n_vocab %d", n_vocab);
    if ((targets && !target_logprobs) || (top_n > 0 && (!top_tokens || !top_logprobs)))
        return ec_fail(EC_ERR_ARGUMENT, "score rows: output arrays are missing");
    for (int32_t r = 0; targets && r < n_rows; r++)
        if (targets[r] < 0 || targets[r] >= n_vocab)
            return ec_fail(EC_ERR_ARGUMENT, "score rows: target %d outside the vocabulary [0, %d)",
                           targets[r], n_vocab);
    for (int32_t r = 0; r < n_rows; r++) {
        const float *row = logits + (size_t)r * (size_t)n_vocab;
        double log_z = ec_log_normalizer(row, n_vocab);
        if (targets) target_logprobs[r] = (float)((double)row[targets[r]] - log_z);
        if (top_n > 0) {
            int32_t *tokens = top_tokens + (size_t)r * (size_t)top_n;
            float *values = top_logprobs + (size_t)r * (size_t)top_n;
            int32_t found = ec_top_k(row, n_vocab, top_n, ws, tokens);
            for (int32_t j = 0; j < found; j++) values[j] = (float)((double)row[tokens[j]] - log_z);
            for (int32_t j = found; j < top_n; j++) {
                tokens[j] = EC_NONE;
                values[j] = -INFINITY;
            }
        }
    }
    return EC_OK;
}
