/*
 * Per-sequence state and the batch step.
 *
 * A sequence is one candidate completion. Its state changes in one place
 * only, ec_sequence_accept(): penalty counts, token history, text, stop
 * matcher, log-prob sum. The stages in sampling.c, constrain.c and logprob.c
 * are pure functions of a logits row.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

typedef struct {
    char *data;
    int64_t len, cap;
} byte_buffer;

typedef struct {
    int32_t *data;
    int32_t len, cap;
} token_buffer;

typedef struct {
    char *bytes;
    int32_t *lengths;
    int32_t n;
    bool first_token_only;
} option_list;

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

    token_buffer history;   /* searched by the sequence penalty */
    token_buffer generated; /* every sampled token */
    option_list inclusion, exclusion;

    ec_stop_matcher *stops;
    byte_buffer text, raw;
    int64_t text_length; /* visible length; shorter than text.len after a stop */
    double logprob_sum;
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

static int append_bytes(byte_buffer *b, const char *data, int32_t len) {
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

static int append_tokens(token_buffer *b, const int32_t *tokens, int32_t n) {
    if (b->len + n > b->cap) {
        int32_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + n) cap *= 2;
        int32_t *grown = realloc(b->data, (size_t)cap * sizeof *grown);
        if (!grown) return ec_fail(EC_ERR_MEMORY, "out of memory for the token history");
        b->data = grown;
        b->cap = cap;
    }
    if (n > 0) memcpy(b->data + b->len, tokens, (size_t)n * sizeof *tokens);
    b->len += n;
    return EC_OK;
}

static int copy_options(option_list *list, const char *bytes, const int32_t *lengths, int32_t n,
                        bool first_token_only, const char *field) {
    if (n < 0 || (n > 0 && (!bytes || !lengths)))
        return ec_fail(EC_ERR_ARGUMENT, "%s: bad arguments (n=%d)", field, n);
    int64_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        if (lengths[i] <= 0) return ec_fail(EC_ERR_ARGUMENT, "%s: string %d is empty", field, i);
        total += lengths[i];
    }
    list->first_token_only = first_token_only;
    if (n == 0) return EC_OK;
    list->bytes = malloc((size_t)total);
    list->lengths = malloc((size_t)n * sizeof *list->lengths);
    if (!list->bytes || !list->lengths) return ec_fail(EC_ERR_MEMORY, "out of memory for %s", field);
    memcpy(list->bytes, bytes, (size_t)total);
    memcpy(list->lengths, lengths, (size_t)n * sizeof *lengths);
    list->n = n;
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

/* cffi reads the header's arrays as written, so their size is spelled out there. */
_Static_assert(sizeof(((ec_step_result *)0)->top_tokens) == EC_MAX_LOG_PROBS * sizeof(int32_t),
               "ec_step_result holds EC_MAX_LOG_PROBS alternatives");

static int check_penalty(float value, bool multiplicative, const char *field) {
    if (!(value >= -EC_MAX_PENALTY && value <= EC_MAX_PENALTY))
        return ec_fail(EC_ERR_ARGUMENT, "%s must be in [-%d, %d], got %g", field, EC_MAX_PENALTY,
                       EC_MAX_PENALTY, value);
    if (multiplicative && !(1.0 + value > 0))
        return ec_fail(EC_ERR_ARGUMENT, "multiplicative %s needs 1 + penalty > 0", field);
    return EC_OK;
}

static int check_config(const ec_vocab *vocab, const ec_sequence_config *c) {
    int32_t n_vocab = vocab->n_vocab;
    if (!(c->temperature >= 0) || isinf(c->temperature))
        return ec_fail(EC_ERR_ARGUMENT, "temperature must be finite and >= 0, got %g", c->temperature);
    if (c->top_k < 0) return ec_fail(EC_ERR_ARGUMENT, "top_k must be >= 0, got %d", c->top_k);
    if (!(c->top_p >= 0 && c->top_p <= 1))
        return ec_fail(EC_ERR_ARGUMENT, "top_p must be in [0, 1], got %g", c->top_p);
    int rc = check_penalty(c->presence_penalty, c->multiplicative_presence, "presence_penalty");
    if (rc == EC_OK) rc = check_penalty(c->frequency_penalty, c->multiplicative_frequency, "frequency_penalty");
    if (rc == EC_OK) rc = check_penalty(c->sequence_penalty, c->multiplicative_sequence, "sequence_penalty");
    if (rc != EC_OK) return rc;
    if (c->sequence_penalty != 0 && c->sequence_min_length < 2)
        return ec_fail(EC_ERR_ARGUMENT, "sequence_penalty_min_length must be >= 2, got %d",
                       c->sequence_min_length);
    if (c->minimum_tokens < 0)
        return ec_fail(EC_ERR_ARGUMENT, "minimum_tokens must be >= 0, got %d", c->minimum_tokens);
    if (c->log_probs < -1 || c->log_probs > EC_MAX_LOG_PROBS)
        return ec_fail(EC_ERR_ARGUMENT, "log_probs must be in [0, %d] or -1, got %d", EC_MAX_LOG_PROBS,
                       c->log_probs);
    if ((c->n_inclusion > 0 || c->n_exclusion > 0) && !vocab->sorted)
        return ec_fail(EC_ERR_ARGUMENT, "completion bias needs a finalized vocabulary");
    rc = check_ids(c->penalty_context, c->n_penalty_context, n_vocab, "penalty context");
    if (rc == EC_OK) rc = check_ids(c->penalty_exceptions, c->n_penalty_exceptions, n_vocab,
                                    "penalty_exceptions");
    if (rc == EC_OK) rc = check_ids(c->sequence_context, c->n_sequence_context, n_vocab,
                                    "sequence penalty context");
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
    if (!seq) {
        ec_fail(EC_ERR_MEMORY, "out of memory for a sequence");
        return NULL;
    }
    seq->vocab = vocab;
    seq->config = *config;
    /* The config's arrays belong to the caller: keep copies, drop the pointers. */
    seq->config.penalty_context = seq->config.penalty_exceptions = NULL;
    seq->config.bias_tokens = NULL;
    seq->config.bias_values = NULL;
    seq->config.stop_bytes = seq->config.inclusion_bytes = seq->config.exclusion_bytes = NULL;
    seq->config.stop_lengths = seq->config.inclusion_lengths = seq->config.exclusion_lengths = NULL;
    seq->config.sequence_context = NULL;

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
    if (append_tokens(&seq->history, config->sequence_context, config->n_sequence_context) != EC_OK)
        goto fail;
    if (copy_options(&seq->inclusion, config->inclusion_bytes, config->inclusion_lengths,
                     config->n_inclusion, config->inclusion_first_token_only,
                     "completion_bias_inclusion") != EC_OK ||
        copy_options(&seq->exclusion, config->exclusion_bytes, config->exclusion_lengths,
                     config->n_exclusion, config->exclusion_first_token_only,
                     "completion_bias_exclusion") != EC_OK)
        goto fail;
    if (config->n_stops > 0) {
        seq->stops = ec_stop_matcher_new(config->stop_bytes, config->stop_lengths, config->n_stops);
        if (!seq->stops) goto fail; /* the matcher said why */
    }
    seq->status = EC_RUNNING;
    return seq;

out_of_memory:
    ec_fail(EC_ERR_MEMORY, "out of memory for a sequence over %d tokens", n_vocab);
fail:
    ec_sequence_free(seq);
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
    free(seq->history.data);
    free(seq->generated.data);
    free(seq->inclusion.bytes);
    free(seq->inclusion.lengths);
    free(seq->exclusion.bytes);
    free(seq->exclusion.lengths);
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

int32_t ec_sequence_generated(const ec_sequence *seq) { return seq ? seq->generated.len : 0; }

double ec_sequence_mean_logprob(const ec_sequence *seq) {
    if (!seq || seq->generated.len == 0 || !(seq->config.score || seq->config.log_probs >= 0))
        return NAN;
    return seq->logprob_sum / seq->generated.len;
}

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

static bool completes_an_option(const option_list *options, const char *text, int64_t len) {
    const char *option = options->bytes;
    for (int32_t i = 0; i < options->n; option += options->lengths[i], i++)
        if (options->lengths[i] == len && memcmp(option, text, (size_t)len) == 0) return true;
    return false;
}

int ec_sequence_accept(ec_sequence *seq, int32_t token, ec_step_result *result) {
    if (!seq || !result) return ec_fail(EC_ERR_ARGUMENT, "sequence and result are required");
    const ec_vocab *vocab = seq->vocab;
    if (token < 0 || token >= vocab->n_vocab)
        return ec_fail(EC_ERR_ARGUMENT, "token %d outside the vocabulary [0, %d)", token,
                       vocab->n_vocab);
    if (seq->status != EC_RUNNING)
        return ec_fail(EC_ERR_ARGUMENT, "the sequence has already finished");

    int rc = append_tokens(&seq->generated, &token, 1);
    if (rc != EC_OK) return rc;
    int32_t len;
    const char *piece = ec_vocab_piece(vocab, token, 1, &len);
    rc = append_bytes(&seq->raw, piece, len);
    if (rc != EC_OK) return rc;

    if (vocab->flags[token] & EC_TOKEN_END_OF_GENERATION) {
        seq->status = EC_END_OF_TEXT;
    } else {
        if (seq->config.penalize_completion) {
            count_token(seq, token);
            rc = append_tokens(&seq->history, &token, 1);
            if (rc != EC_OK) return rc;
        }
        piece = ec_piece(vocab, token, &len);
        int64_t start = seq->text.len;
        rc = append_bytes(&seq->text, piece, len);
        if (rc != EC_OK) return rc;
        seq->text_length = seq->text.len;
        if (seq->stops && len > 0) {
            int64_t cut = ec_stop_matcher_feed(seq->stops, seq->text.data + start, len);
            if (cut >= 0) {
                seq->status = EC_STOP_SEQUENCE;
                seq->text_length = cut;
            }
        }
        if (seq->status == EC_RUNNING && seq->inclusion.n > 0 && !seq->inclusion.first_token_only &&
            completes_an_option(&seq->inclusion, seq->text.data, seq->text.len))
            seq->status = EC_END_OF_TEXT;
    }
    result->token = token;
    result->status = seq->status;
    result->text_length = seq->text_length;
    result->stable_length = seq->text_length;
    if (seq->status == EC_RUNNING && seq->stops)
        result->stable_length -= ec_stop_matcher_pending(seq->stops);
    return EC_OK;
}

/* The chain on one row. It works in place on a row it owns (`own_row`), unless
 * log-probs need the raw values afterwards: then, as for a shared row, on a
 * copy in the workspace. */
static int sample_one(ec_workspace *ws, ec_sequence *seq, float *own_row, const float *raw,
                      int32_t n_vocab, ec_step_result *result) {
    const ec_sequence_config *c = &seq->config;
    const ec_vocab *vocab = seq->vocab;
    int32_t step = seq->generated.len;
    bool scored = c->score || c->log_probs >= 0;
    float *row = own_row;
    if (!row || scored) {
        row = ws->row;
        memcpy(row, raw, (size_t)n_vocab * sizeof *row);
    }

    int rc = ec_apply_logit_bias(row, n_vocab, seq->bias_tokens, seq->bias_values, c->n_bias);
    const option_list *lists[2] = {&seq->inclusion, &seq->exclusion};
    for (int k = 0; k < 2 && rc == EC_OK; k++) {
        const option_list *options = lists[k];
        if (options->n > 0 && (!options->first_token_only || step == 0))
            rc = ec_apply_completion_bias(row, vocab, seq->text.data, seq->text.len, options->bytes,
                                          options->lengths, options->n, k == 0,
                                          options->first_token_only, ws);
    }
    if (rc == EC_OK && step < c->minimum_tokens)
        rc = ec_mask_tokens(row, n_vocab, vocab->end_of_generation, vocab->n_end_of_generation);
    if (rc == EC_OK && (c->presence_penalty != 0 || c->frequency_penalty != 0))
        rc = ec_apply_penalties(row, n_vocab, seq->penalty_tokens, seq->penalty_counts,
                                seq->n_penalised, c->presence_penalty, c->frequency_penalty,
                                c->multiplicative_presence, c->multiplicative_frequency);
    int32_t n_key = c->sequence_min_length - 1;
    if (rc == EC_OK && c->sequence_penalty != 0 && step >= n_key)
        rc = ec_apply_sequence_penalty(row, n_vocab, seq->history.data, seq->history.len,
                                       seq->generated.data + step - n_key, n_key,
                                       c->sequence_penalty, c->multiplicative_sequence, ws);
    if (rc != EC_OK) return rc;
    double u = ec_uniform(c->seed, (uint64_t)step);
    int32_t token = ec_sample_row(row, n_vocab, c->temperature, c->top_k, c->top_p, u, ws);
    if (token < 0) return token;

    result->logprob = NAN;
    result->n_top = 0;
    if (scored) {
        double log_z = ec_log_normalizer(raw, n_vocab);
        result->logprob = (float)((double)raw[token] - log_z);
        seq->logprob_sum += result->logprob;
        if (c->log_probs > 0) {
            result->n_top = ec_top_k(raw, n_vocab, c->log_probs, ws, result->top_tokens);
            for (int32_t j = 0; j < result->n_top; j++)
                result->top_logprobs[j] = (float)((double)raw[result->top_tokens[j]] - log_z);
        }
    }
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

/* A sequence whose constraints leave no token ends with EC_NO_TOKEN; the other rows of the step
 * go on (one request's impossible constraints never fail the requests sharing its batch). */
static int no_token(ec_step_result *result) {
    memset(result, 0, sizeof *result);
    result->token = -1;
    result->status = EC_NO_TOKEN;
    result->logprob = NAN;
    return EC_OK;
}

int ec_sample_step(ec_workspace *ws, ec_sequence *const *seqs, int32_t n_seqs, float *logits,
                   int32_t n_rows, int32_t n_vocab, ec_step_result *results) {
    int rc = check_step(ws, seqs, n_seqs, logits, n_vocab, results);
    if (rc != EC_OK) return rc;
    if (n_seqs > n_rows)
        return ec_fail(EC_ERR_ARGUMENT, "%d sequences for %d logits rows", n_seqs, n_rows);
    for (int32_t i = 0; i < n_seqs; i++) {
        float *row = logits + (size_t)i * (size_t)n_vocab;
        rc = sample_one(ws, seqs[i], row, row, n_vocab, &results[i]);
        if (rc == EC_ERR_NO_CANDIDATES) rc = no_token(&results[i]);  /* this row only */
        if (rc != EC_OK) return rc;
    }
    return EC_OK;
}

/* Speculation: sequence i owns 1 + n_drafts[i] consecutive rows, the rows of its next token and
 * of its drafted tokens after it. Its rows are sampled in order, each exactly as a step of its
 * own (same stages, same draw for the same step), until a sampled token differs from the draft
 * at that place, the sequence ends, or its rows run out: a draft is accepted when the sequence
 * samples it. For a drafted token (a draft distribution that is all on one token) this is the
 * speculative-sampling rule, accept with probability p(draft) and else draw from p without the
 * draft, taken with the step's own uniform: the text is the one decoding without drafts gives. */
int ec_sample_drafts(ec_workspace *ws, ec_sequence *const *seqs, int32_t n_seqs,
                     const int32_t *drafts, const int32_t *n_drafts, float *logits, int32_t n_rows,
                     int32_t n_vocab, ec_step_result *results, int32_t *n_sampled) {
    int rc = check_step(ws, seqs, n_seqs, logits, n_vocab, results);
    if (rc != EC_OK) return rc;
    if (n_seqs > 0 && (!n_drafts || !n_sampled))
        return ec_fail(EC_ERR_ARGUMENT, "draft counts and sampled counts are required");
    int64_t rows = 0;
    for (int32_t i = 0; i < n_seqs; i++) {
        if (n_drafts[i] < 0) return ec_fail(EC_ERR_ARGUMENT, "sequence %d has %d drafts", i, n_drafts[i]);
        rows += 1 + (int64_t)n_drafts[i];
    }
    if (rows > n_rows)
        return ec_fail(EC_ERR_ARGUMENT, "%lld rows needed for %d sequences and their drafts, %d given",
                       (long long)rows, n_seqs, n_rows);
    if (rows > n_seqs && !drafts) return ec_fail(EC_ERR_ARGUMENT, "drafts is NULL");
    for (int64_t j = 0; j < rows - n_seqs; j++) /* all checked before any sequence changes */
        if (drafts[j] < 0 || drafts[j] >= n_vocab)
            return ec_fail(EC_ERR_ARGUMENT, "draft %lld: token %d outside the vocabulary [0, %d)",
                           (long long)j, drafts[j], n_vocab);
    int64_t first_row = 0, first_draft = 0;
    for (int32_t i = 0; i < n_seqs; i++) {
        const int32_t *draft = drafts ? drafts + first_draft : NULL;
        int32_t r = 0;
        for (;;) {
            float *row = logits + (size_t)(first_row + r) * (size_t)n_vocab;
            ec_step_result *result = &results[first_row + r];
            rc = sample_one(ws, seqs[i], row, row, n_vocab, result);
            if (rc == EC_ERR_NO_CANDIDATES) rc = no_token(result); /* this sequence only */
            if (rc != EC_OK) return rc;
            r++;
            if (result->status != EC_RUNNING || r > n_drafts[i] || result->token != draft[r - 1]) break;
        }
        n_sampled[i] = r;
        first_row += 1 + n_drafts[i];
        first_draft += n_drafts[i];
    }
    return EC_OK;
}

int ec_sample_shared_row(ec_workspace *ws, ec_sequence *const *seqs, int32_t n_seqs,
                         const float *row, int32_t n_vocab, ec_step_result *results) {
    int rc = check_step(ws, seqs, n_seqs, row, n_vocab, results);
    if (rc != EC_OK) return rc;
    for (int32_t i = 0; i < n_seqs; i++) {
        rc = sample_one(ws, seqs[i], NULL, row, n_vocab, &results[i]);
        if (rc == EC_ERR_NO_CANDIDATES) rc = no_token(&results[i]);
        if (rc != EC_OK) return rc;
    }
    return EC_OK;
}
