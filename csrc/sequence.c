/*
 * Per-sequence state and the batch step.
 *
 * A sequence is one candidate completion. Its state changes in one place
 * only, ec_sequence_accept(): penalty counts, text, stop matcher. The stages
 * in sampling.c are pure transformations of a logits row.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct {
    char *data;
    int64_t len, cap;
} byte_buffer;

struct ec_sequence {
    const ec_vocab *vocab;
    ec_sequence_config config; /* scalars; the arrays below are owned copies */

    int32_t *bias_tokens;
    float *bias_values;

    /* Penalised multiset: tokens[i] occurred counts[i] times; slot[t] = i + 1. */
    int32_t *slot;
    int32_t *penalty_tokens;
    int32_t *penalty_counts;
    int32_t n_penalised;
    int32_t *exceptions; /* sorted */
    int32_t n_exceptions;

    ec_stop_matcher *stops;
    byte_buffer text, raw;
    int64_t text_length; /* visible length; shorter than text.len after a stop */
    int32_t generated;
    int32_t status;
};

static int compare_int32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static bool is_exception(const ec_sequence *seq, int32_t token) {
    return seq->n_exceptions > 0 &&
           bsearch(&token, seq->exceptions, (size_t)seq->n_exceptions, sizeof(int32_t),
                   compare_int32) != NULL;
}

static void count_token(ec_sequence *seq, int32_t token) {
    if (is_exception(seq, token)) return;
    int32_t i = seq->slot[token];
    if (i == 0) {
        i = ++seq->n_penalised;
        seq->slot[token] = i;
        seq->penalty_tokens[i - 1] = token;
        seq->penalty_counts[i - 1] = 0;
    }
    seq->penalty_counts[i - 1]++;
}

static int append(byte_buffer *b, const char *data, int32_t len) {
    if (b->len + len > b->cap) {
        int64_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + len) cap *= 2;
        char *grown = realloc(b->data, (size_t)cap);
        if (!grown) return ec_fail(EC_ERR_MEMORY, "out of memory for the completion text");
        b->data = grown;
        b->cap = cap;
    }
    if (len > 0) memcpy(b->data + b->len, data, (size_t)len);
    b->len += len;
    return EC_OK;
}

static int check_ids(const int32_t *ids, int32_t n, int32_t n_vocab, const char *field) {
    if (n < 0 || (n > 0 && !ids))
        return ec_fail(EC_ERR_ARGUMENT, "%s: bad array (n=%d)", field, n);
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= n_vocab)
            return ec_fail(EC_ERR_ARGUMENT, "%s: token %d outside the vocabulary [0, %d)", field,
                           ids[i], n_vocab);
    return EC_OK;
}

static int check_config(const ec_vocab *vocab, const ec_sequence_config *c) {
    int32_t n_vocab = vocab->n_vocab;
    if (!(c->temperature >= 0) || isinf(c->temperature))
        return ec_fail(EC_ERR_ARGUMENT, "temperature must be finite and >= 0, got %g", c->temperature);
    if (c->top_k < 0) return ec_fail(EC_ERR_ARGUMENT, "top_k must be >= 0, got %d", c->top_k);
    if (!(c->top_p >= 0 && c->top_p <= 1))
        return ec_fail(EC_ERR_ARGUMENT, "top_p must be in [0, 1], got %g", c->top_p);
    if (!(c->presence_penalty >= -2 && c->presence_penalty <= 2))
        return ec_fail(EC_ERR_ARGUMENT, "presence_penalty must be in [-2, 2], got %g",
                       c->presence_penalty);
    if (!(c->frequency_penalty >= -2 && c->frequency_penalty <= 2))
        return ec_fail(EC_ERR_ARGUMENT, "frequency_penalty must be in [-2, 2], got %g",
                       c->frequency_penalty);
    if (c->multiplicative_presence && !(1.0 + c->presence_penalty > 0))
        return ec_fail(EC_ERR_ARGUMENT, "multiplicative presence_penalty needs 1 + p > 0");
    if (c->multiplicative_frequency && !(1.0 + c->frequency_penalty > 0))
        return ec_fail(EC_ERR_ARGUMENT, "multiplicative frequency_penalty needs 1 + f > 0");
    if (c->minimum_tokens < 0)
        return ec_fail(EC_ERR_ARGUMENT, "minimum_tokens must be >= 0, got %d", c->minimum_tokens);
    int rc = check_ids(c->penalty_context, c->n_penalty_context, n_vocab, "penalty context");
    if (rc == EC_OK) rc = check_ids(c->penalty_exceptions, c->n_penalty_exceptions, n_vocab,
                                    "penalty_exceptions");
    if (rc == EC_OK) rc = check_ids(c->bias_tokens, c->n_bias, n_vocab, "logit_bias");
    if (rc != EC_OK) return rc;
    if (c->n_bias > 0 && !c->bias_values)
        return ec_fail(EC_ERR_ARGUMENT, "logit_bias: values is NULL");
    return EC_OK;
}

ec_sequence *ec_sequence_new(const ec_vocab *vocab, const ec_sequence_config *config) {
    if (!vocab || !config) {
        ec_fail(EC_ERR_ARGUMENT, "vocabulary and config are required");
        return NULL;
    }
    if (check_config(vocab, config) != EC_OK) return NULL;
    int32_t n_vocab = vocab->n_vocab;
    ec_sequence *seq = calloc(1, sizeof *seq);
    if (!seq) goto out_of_memory;
    seq->vocab = vocab;
    seq->config = *config;
    seq->config.penalty_context = NULL;
    seq->config.penalty_exceptions = NULL;
    seq->config.bias_tokens = NULL;
    seq->config.bias_values = NULL;
    seq->config.stop_bytes = NULL;
    seq->config.stop_lengths = NULL;

    seq->slot = calloc((size_t)n_vocab, sizeof *seq->slot);
    seq->penalty_tokens = malloc((size_t)n_vocab * sizeof *seq->penalty_tokens);
    seq->penalty_counts = malloc((size_t)n_vocab * sizeof *seq->penalty_counts);
    if (!seq->slot || !seq->penalty_tokens || !seq->penalty_counts) goto out_of_memory;

    if (config->n_bias > 0) {
        seq->bias_tokens = malloc((size_t)config->n_bias * sizeof *seq->bias_tokens);
        seq->bias_values = malloc((size_t)config->n_bias * sizeof *seq->bias_values);
        if (!seq->bias_tokens || !seq->bias_values) goto out_of_memory;
        memcpy(seq->bias_tokens, config->bias_tokens, (size_t)config->n_bias * sizeof(int32_t));
        memcpy(seq->bias_values, config->bias_values, (size_t)config->n_bias * sizeof(float));
    }
    if (config->n_penalty_exceptions > 0) {
        size_t size = (size_t)config->n_penalty_exceptions * sizeof(int32_t);
        seq->exceptions = malloc(size);
        if (!seq->exceptions) goto out_of_memory;
        memcpy(seq->exceptions, config->penalty_exceptions, size);
        qsort(seq->exceptions, (size_t)config->n_penalty_exceptions, sizeof(int32_t), compare_int32);
        seq->n_exceptions = config->n_penalty_exceptions;
    }
    for (int32_t i = 0; i < config->n_penalty_context; i++)
        count_token(seq, config->penalty_context[i]);

    if (config->n_stops > 0) {
        seq->stops = ec_stop_matcher_new(config->stop_bytes, config->stop_lengths, config->n_stops);
        if (!seq->stops) {
            ec_sequence_free(seq);
            return NULL; /* the matcher said why */
        }
    }
    seq->status = EC_RUNNING;
    return seq;

out_of_memory:
    ec_sequence_free(seq);
    ec_fail(EC_ERR_MEMORY, "out of memory for a sequence over %d tokens", n_vocab);
    return NULL;
}

void ec_sequence_free(ec_sequence *seq) {
    if (!seq) return;
    free(seq->bias_tokens);
    free(seq->bias_values);
    free(seq->slot);
    free(seq->penalty_tokens);
    free(seq->penalty_counts);
    free(seq->exceptions);
    ec_stop_matcher_free(seq->stops);
    free(seq->text.data);
    free(seq->raw.data);
    free(seq);
}

const char *ec_sequence_text(const ec_sequence *seq, int64_t *len) {
    if (len) *len = seq ? seq->text_length : 0;
    return seq ? seq->text.data : NULL;
}

const char *ec_sequence_raw(const ec_sequence *seq, int64_t *len) {
    if (len) *len = seq ? seq->raw.len : 0;
    return seq ? seq->raw.data : NULL;
}

int32_t ec_sequence_generated(const ec_sequence *seq) { return seq ? seq->generated : 0; }

int32_t ec_sequence_penalty_counts(const ec_sequence *seq, int32_t *tokens, int32_t *counts,
                                   int32_t capacity) {
    if (!seq || capacity < 0 || (capacity > 0 && (!tokens || !counts)))
        return ec_fail(EC_ERR_ARGUMENT, "penalty counts: bad arguments");
    for (int32_t i = 0; i < seq->n_penalised && i < capacity; i++) {
        tokens[i] = seq->penalty_tokens[i];
        counts[i] = seq->penalty_counts[i];
    }
    return seq->n_penalised;
}

int ec_sequence_accept(ec_sequence *seq, int32_t token, ec_step_result *result) {
    if (!seq || !result) return ec_fail(EC_ERR_ARGUMENT, "sequence and result are required");
    const ec_vocab *vocab = seq->vocab;
    if (token < 0 || token >= vocab->n_vocab)
        return ec_fail(EC_ERR_ARGUMENT, "token %d outside the vocabulary [0, %d)", token,
                       vocab->n_vocab);
    if (seq->status != EC_RUNNING)
        return ec_fail(EC_ERR_ARGUMENT, "the sequence has already finished");

    seq->generated++;
    int32_t len;
    const char *piece = ec_vocab_piece(vocab, token, 1, &len);
    int rc = append(&seq->raw, piece, len);
    if (rc != EC_OK) return rc;

    if (vocab->flags[token] & EC_TOKEN_END_OF_GENERATION) {
        seq->status = EC_END_OF_TEXT;
    } else {
        if (seq->config.penalize_completion) count_token(seq, token);
        piece = ec_vocab_piece(vocab, token, 0, &len);
        int64_t start = seq->text.len;
        rc = append(&seq->text, piece, len);
        if (rc != EC_OK) return rc;
        seq->text_length = seq->text.len;
        if (seq->stops && len > 0) {
            int64_t cut = ec_stop_matcher_feed(seq->stops, seq->text.data + start, len);
            if (cut >= 0) {
                seq->status = EC_STOP_SEQUENCE;
                seq->text_length = cut;
            }
        }
    }
    result->token = token;
    result->status = seq->status;
    result->text_length = seq->text_length;
    result->stable_length = seq->text_length;
    if (seq->status == EC_RUNNING && seq->stops)
        result->stable_length -= ec_stop_matcher_pending(seq->stops);
    return EC_OK;
}

static int sample_one(ec_workspace *ws, ec_sequence *seq, float *row, int32_t n_vocab,
                      ec_step_result *result) {
    const ec_sequence_config *c = &seq->config;
    const ec_vocab *vocab = seq->vocab;
    int rc = ec_apply_logit_bias(row, n_vocab, seq->bias_tokens, seq->bias_values, c->n_bias);
    if (rc == EC_OK && seq->generated < c->minimum_tokens)
        rc = ec_mask_tokens(row, n_vocab, vocab->end_of_generation, vocab->n_end_of_generation);
    if (rc == EC_OK && (c->presence_penalty != 0 || c->frequency_penalty != 0))
        rc = ec_apply_penalties(row, n_vocab, seq->penalty_tokens, seq->penalty_counts,
                                seq->n_penalised, c->presence_penalty, c->frequency_penalty,
                                c->multiplicative_presence, c->multiplicative_frequency);
    if (rc != EC_OK) return rc;
    double u = ec_uniform(c->seed, c->stream, (uint64_t)seq->generated);
    int32_t token = ec_sample_row(row, n_vocab, c->temperature, c->top_k, c->top_p, u, ws);
    if (token < 0) return token;
    return ec_sequence_accept(seq, token, result);
}

static int check_step(ec_workspace *ws, ec_sequence *const *seqs, int32_t n_seqs,
                      const float *logits, int32_t n_vocab, ec_step_result *results) {
    if (!ws || !seqs || !logits || !results)
        return ec_fail(EC_ERR_ARGUMENT, "workspace, sequences, logits and results are required");
    if (n_seqs < 0) return ec_fail(EC_ERR_ARGUMENT, "negative number of sequences %d", n_seqs);
    if (ws->n_vocab < n_vocab)
        return ec_fail(EC_ERR_ARGUMENT, "workspace holds %d tokens, logits have %d", ws->n_vocab,
                       n_vocab);
    for (int32_t i = 0; i < n_seqs; i++) {
        if (!seqs[i]) return ec_fail(EC_ERR_ARGUMENT, "sequence %d is NULL", i);
        if (seqs[i]->vocab->n_vocab != n_vocab)
            return ec_fail(EC_ERR_ARGUMENT, "sequence %d has a vocabulary of %d tokens, logits %d",
                           i, seqs[i]->vocab->n_vocab, n_vocab);
        if (seqs[i]->status != EC_RUNNING)
            return ec_fail(EC_ERR_ARGUMENT, "sequence %d has already finished", i);
    }
    return EC_OK;
}

int ec_sample_step(ec_workspace *ws, ec_sequence *const *seqs, int32_t n_seqs, float *logits,
                   int32_t n_rows, int32_t n_vocab, ec_step_result *results) {
    int rc = check_step(ws, seqs, n_seqs, logits, n_vocab, results);
    if (rc != EC_OK) return rc;
    if (n_seqs > n_rows)
        return ec_fail(EC_ERR_ARGUMENT, "%d sequences for %d logits rows", n_seqs, n_rows);
    for (int32_t i = 0; i < n_seqs; i++) {
        rc = sample_one(ws, seqs[i], logits + (size_t)i * (size_t)n_vocab, n_vocab, &results[i]);
        if (rc != EC_OK) return rc;
    }
    return EC_OK;
}

int ec_sample_shared_row(ec_workspace *ws, ec_sequence *const *seqs, int32_t n_seqs,
                         const float *row, int32_t n_vocab, ec_step_result *results) {
    int rc = check_step(ws, seqs, n_seqs, row, n_vocab, results);
    if (rc != EC_OK) return rc;
    for (int32_t i = 0; i < n_seqs; i++) {
        memcpy(ws->row, row, (size_t)n_vocab * sizeof *row);
        rc = sample_one(ws, seqs[i], ws->row, n_vocab, &results[i]);
        if (rc != EC_OK) return rc;
    }
    return EC_OK;
}
