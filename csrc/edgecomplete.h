/*
 * edgecomplete.h: the whole C API that the Python side sees.
 *
 * The cffi build (csrc/build_ffi.py) feeds this file, minus its preprocessor
 * lines, to cdef(), so everything below must stay plain C declarations.
 *
 * Concerns, one file each:
 *   vocab.c     token pieces (visible text and raw text with specials) and token flags
 *   sampling.c  the per-row stages: logit bias, masks, penalties, temperature,
 *               top_k, top_p, draw; the seeded per-sequence random stream
 *   stop.c      stop-sequence matcher over decoded bytes (Aho-Corasick)
 *   logprob.c   log-softmax of raw rows (vectorisable), top-n, scoring rows
 *   constrain.c completion_bias_inclusion / _exclusion over the sorted pieces
 *   rank.c      best_of: candidates by mean raw log-prob
 *   sequence.c  per-sequence state (penalty counts, text, stop matcher) and the
 *               batch step that samples every row of one decode step
 *
 * Every entry point checks its sizes and indices and reports misuse through a
 * negative return value (EC_ERR_*) and ec_last_error(); none of them aborts.
 */
#ifndef EDGECOMPLETE_H
#define EDGECOMPLETE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Return codes: -1 is kept for "none" (no match, no candidate index). */
#define EC_OK 0
#define EC_NONE -1
#define EC_ERR_ARGUMENT -2
#define EC_ERR_MEMORY -3
#define EC_ERR_NO_CANDIDATES -4

/* Token flags in the vocabulary. */
#define EC_TOKEN_END_OF_GENERATION 1
#define EC_TOKEN_SPECIAL 2

/* Most alternatives a step reports (log_probs); ec_step_result's arrays hold this many. */
#define EC_MAX_LOG_PROBS 20
/* Presence, frequency and sequence penalties lie in [-EC_MAX_PENALTY, EC_MAX_PENALTY]. */
#define EC_MAX_PENALTY 2

/* Sequence status after a step. */
#define EC_RUNNING 0
#define EC_END_OF_TEXT 1
#define EC_STOP_SEQUENCE 2
/* the sequence's constraints left no token: it cannot go on */
#define EC_NO_TOKEN 3

/* Message of the last error on this thread (empty when none). */
const char *ec_last_error(void);

/* ---- vocabulary ------------------------------------------------------- */

typedef struct ec_vocab ec_vocab;

ec_vocab *ec_vocab_new(int32_t n_vocab);
void ec_vocab_free(ec_vocab *vocab);
int32_t ec_vocab_size(const ec_vocab *vocab);
/* text: bytes shown in a completion; raw: bytes with special tokens rendered. */
int ec_vocab_set_token(ec_vocab *vocab, int32_t token, const char *text, int32_t text_len,
                       const char *raw, int32_t raw_len, int32_t flags);
/* Pointer to the token's bytes (raw != 0: the raw rendering); NULL on a bad token. */
const char *ec_vocab_piece(const ec_vocab *vocab, int32_t token, int32_t raw, int32_t *len);
int32_t ec_vocab_flags(const ec_vocab *vocab, int32_t token);
/* Call once every token is set: indexes the visible pieces (sorted) for the
 * completion-bias constraints. */
int ec_vocab_finalize(ec_vocab *vocab);

/* ---- random stream ---------------------------------------------------- */

/* Uniform draw in [0, 1) for (seed, step): counter-based, so a sequence's
 * draws never depend on what else shares its batch. */
double ec_uniform(uint64_t seed, uint64_t step);

/* ---- sampling stages on one row of logits ------------------------------ */

typedef struct ec_workspace ec_workspace;

ec_workspace *ec_workspace_new(int32_t n_vocab);
void ec_workspace_free(ec_workspace *ws);

int ec_apply_logit_bias(float *logits, int32_t n_vocab, const int32_t *tokens,
                        const float *bias, int32_t n);
int ec_mask_tokens(float *logits, int32_t n_vocab, const int32_t *tokens, int32_t n);
/* tokens[i] occurred counts[i] > 0 times in the penalised multiset. */
int ec_apply_penalties(float *logits, int32_t n_vocab, const int32_t *tokens,
                       const int32_t *counts, int32_t n, float presence, float frequency,
                       bool multiplicative_presence, bool multiplicative_frequency);
int ec_apply_temperature(float *logits, int32_t n_vocab, float temperature);
/* Greedy: index of the largest logit, ties to the lowest id; EC_NONE when
 * every logit is -inf or NaN. */
int32_t ec_argmax(const float *logits, int32_t n_vocab);
/* The tokens top_k and top_p keep (logits already divided by the
 * temperature), in descending order (ties: lower id first). Writes at most
 * n_vocab ids; returns how many, or a negative error. top_k = 0 and
 * top_p = 0 mean "off" (then every finite token is kept, in id order). */
int32_t ec_filter(const float *logits, int32_t n_vocab, int32_t top_k, float top_p,
                  ec_workspace *ws, int32_t *kept);
/* The whole draw after penalties: greedy rule, temperature (in place),
 * top_k, top_p, then inverse-CDF with the uniform u. Returns the token or a
 * negative error. */
int32_t ec_sample_row(float *logits, int32_t n_vocab, float temperature, int32_t top_k,
                      float top_p, double u, ec_workspace *ws);

/* Sequence penalty: every distinct token that followed an occurrence of `key`
 * (the last min_length - 1 generated tokens) in `context` has its logit
 * lowered by `penalty` (or divided / multiplied by 1 + penalty). */
int ec_apply_sequence_penalty(float *logits, int32_t n_vocab, const int32_t *context,
                              int32_t n_context, const int32_t *key, int32_t n_key, float penalty,
                              bool multiplicative, ec_workspace *ws);

/* Completion bias after `generated` visible bytes (vocab finalized).
 * Inclusion: only tokens whose piece keeps the text a prefix of an option
 * stay (end-of-generation tokens stay when no other token does).
 * Exclusion: tokens that make the text start with an excluded string are
 * banned. first_token_only: the rule of step 0 (a first token of an option:
 * its piece is a prefix of the string, or for exclusion also extends it). */
int ec_apply_completion_bias(float *logits, const ec_vocab *vocab, const char *generated,
                             int64_t n_generated, const char *options, const int32_t *lengths,
                             int32_t n_options, bool inclusion, bool first_token_only,
                             ec_workspace *ws);

/* ---- log-probabilities of the raw model distribution ------------------- */

/* log Z of a row: log p(t) = logits[t] - log Z. */
double ec_log_normalizer(const float *logits, int32_t n_vocab);
/* For each of n_rows rows: the log-prob of targets[r] (targets may be NULL)
 * and the top_n tokens by log-prob (ties: lower id), top_n <= EC_MAX_LOG_PROBS.
 * Outputs: target_logprobs[n_rows], top_tokens/top_logprobs[n_rows * top_n]. */
int ec_score_rows(const float *logits, int32_t n_rows, int32_t n_vocab, const int32_t *targets,
                  int32_t top_n, ec_workspace *ws, float *target_logprobs, int32_t *top_tokens,
                  float *top_logprobs);

/* ---- stop sequences ----------------------------------------------------- */

typedef struct ec_stop_matcher ec_stop_matcher;

/* n strings, concatenated in bytes, lengths[i] > 0 each. */
ec_stop_matcher *ec_stop_matcher_new(const char *bytes, const int32_t *lengths, int32_t n);
void ec_stop_matcher_free(ec_stop_matcher *matcher);
/* Feed the next bytes of the text. Returns the offset (from the start of
 * everything fed) where the earliest-starting stop sequence that ends within
 * these bytes begins, or EC_NONE when none ends here. */
int64_t ec_stop_matcher_feed(ec_stop_matcher *matcher, const char *bytes, int64_t len);
/* Bytes at the end of the text that could still begin a stop sequence. */
int64_t ec_stop_matcher_pending(const ec_stop_matcher *matcher);

/* ---- sequences and the batch step --------------------------------------- */

typedef struct {
    float temperature;
    int32_t top_k;
    float top_p;

    float presence_penalty;
    float frequency_penalty;
    bool multiplicative_presence;
    bool multiplicative_frequency;
    bool penalize_completion;            /* repetition_penalties_include_completion */
    const int32_t *penalty_context;      /* prompt and/or penalty_bias tokens */
    int32_t n_penalty_context;
    const int32_t *penalty_exceptions;   /* never penalised */
    int32_t n_penalty_exceptions;

    const int32_t *bias_tokens;          /* logit_bias */
    const float *bias_values;
    int32_t n_bias;

    int32_t minimum_tokens;              /* end-of-generation masked before this many */

    float sequence_penalty;
    int32_t sequence_min_length;         /* >= 2 */
    bool multiplicative_sequence;
    const int32_t *sequence_context;     /* searched for repeats (prompt and/or penalty_bias) */
    int32_t n_sequence_context;          /* the completion joins it when penalize_completion */

    const char *inclusion_bytes;         /* completion_bias_inclusion, concatenated */
    const int32_t *inclusion_lengths;
    int32_t n_inclusion;
    bool inclusion_first_token_only;
    const char *exclusion_bytes;         /* completion_bias_exclusion, concatenated */
    const int32_t *exclusion_lengths;
    int32_t n_exclusion;
    bool exclusion_first_token_only;

    bool score;                          /* track raw log-probs of sampled tokens (best_of) */
    int32_t log_probs;                   /* -1: none; else alternatives to report (<= 20) */

    const char *stop_bytes;              /* stop sequences, concatenated */
    const int32_t *stop_lengths;
    int32_t n_stops;

    uint64_t seed;                       /* the request's seed + the candidate's index */
} ec_sequence_config;

typedef struct ec_sequence ec_sequence;

/* The vocabulary must outlive the sequence. Returns NULL (see ec_last_error). */
ec_sequence *ec_sequence_new(const ec_vocab *vocab, const ec_sequence_config *config);
void ec_sequence_free(ec_sequence *seq);
/* Visible text so far (cut at the stop sequence once one matched). */
const char *ec_sequence_text(const ec_sequence *seq, int64_t *len);
/* Raw text so far: every sampled token, specials and stop sequence included. */
const char *ec_sequence_raw(const ec_sequence *seq, int64_t *len);
int32_t ec_sequence_generated(const ec_sequence *seq);

typedef struct {
    int32_t token;          /* the sampled token */
    int32_t status;         /* EC_RUNNING, EC_END_OF_TEXT, EC_STOP_SEQUENCE or EC_NO_TOKEN (token -1) */
    int64_t text_length;    /* visible bytes so far (after a stop: up to its start) */
    int64_t stable_length;  /* visible bytes no stop sequence can cut any more */
    float logprob;          /* raw log-prob of token (NaN unless score or log_probs) */
    int32_t n_top;          /* alternatives below (log_probs) */
    int32_t top_tokens[20];
    float top_logprobs[20];
} ec_step_result;

/* One decode step: row i of logits (n_rows x n_vocab) belongs to seqs[i].
 * Samples every row (in place, unless a sequence wants log-probs: then from a
 * copy), then accepts each token into its sequence. */
int ec_sample_step(ec_workspace *ws, ec_sequence *const *seqs, int32_t n_seqs, float *logits,
                   int32_t n_rows, int32_t n_vocab, ec_step_result *results);

/* Speculative step: sequence i owns 1 + n_drafts[i] consecutive rows (its next token's, then
 * one per drafted token; drafts holds every sequence's drafts one after the other). Each
 * sequence samples its rows in order, as ec_sample_step would one step at a time, and stops at
 * the first token that is not the draft at that place (or when it ends): n_sampled[i] tokens,
 * results at the sequence's rows. */
int ec_sample_drafts(ec_workspace *ws, ec_sequence *const *seqs, int32_t n_seqs,
                     const int32_t *drafts, const int32_t *n_drafts, float *logits, int32_t n_rows,
                     int32_t n_vocab, ec_step_result *results, int32_t *n_sampled);

/* The first step of a request: every sequence samples from the same row
 * (the prompt's last logits), each from its own copy; the row is not modified. */
int ec_sample_shared_row(ec_workspace *ws, ec_sequence *const *seqs, int32_t n_seqs,
                         const float *row, int32_t n_vocab, ec_step_result *results);

/* Accept a token without sampling (used for forced tokens and by tests). */
int ec_sequence_accept(ec_sequence *seq, int32_t token, ec_step_result *result);

/* Mean raw log-prob per generated token (NaN before the first or unscored). */
double ec_sequence_mean_logprob(const ec_sequence *seq);

/* best_of: order of n sequences by mean raw log-prob, highest first, ties to
 * the lower index. */
int ec_rank_sequences(ec_sequence *const *seqs, int32_t n, int32_t *order);

/* Penalised multiset of a sequence, for inspection: writes up to capacity
 * (token, count) pairs, returns the number of distinct tokens. */
int32_t ec_sequence_penalty_counts(const ec_sequence *seq, int32_t *tokens, int32_t *counts,
                                   int32_t capacity);

#endif
