/* best_of: rank candidates by mean raw log-prob per generated token. */
#include <math.h>
#include <stdlib.h>

#include "internal.h"

int ec_rank_sequences(ec_sequence *const *seqs, int32_t n, int32_t *order) {
    if (!seqs || !order || n < 0) return ec_fail(EC_ERR_ARGUMENT, "rank: bad arguments (n=%d)", n);
    for (int32_t i = 0; i < n; i++)
        if (!seqs[i]) return ec_fail(EC_ERR_ARGUMENT, "rank: sequence %d is NULL", i);
    /* Insertion sort: n <= the engine's sequence limit. NaN (unscored) ranks last. */
    for (int32_t i = 0; i < n; i++) {
        double score = ec_sequence_mean_logprob(seqs[i]);
        int32_t j = i;
        while (j > 0) {
            double above = ec_sequence_mean_logprob(seqs[order[j - 1]]);
            bool better = !isnan(score) && (isnan(above) || score > above); /* ties keep index order */
            if (!better) break;
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    return EC_OK;
}
