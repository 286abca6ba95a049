// The two test losses of test_losses.h (scalar element maths only, no
// forward_avx2 / backward_avx2), exported through the CPU driver and
// custom_ops/common/exports.h, for tests/test_scalar_only_loss.py and
// tests/test_loss_params.py: they must build, and run on the portable path
// whatever the SIMD setting (ms_bce_set_simd_path, from parallel.cc); the
// second takes two scalar parameters (custom_ops/common/params.h).
#include "../../custom_ops/cpu/loss_driver.h"
#include "../../custom_ops/common/exports.h"
#include "test_losses.h"

namespace ms_bce {

using SquaredErrorForTest = ms_bce_test::SquaredError<Grad>;
using ScaledSquaredErrorForTest = ms_bce_test::ScaledSquaredError<Grad>;

static_assert(!has_vector_path<SquaredErrorForTest>(), "the test loss must have no vector path");
static_assert(ParamCount<SquaredErrorForTest>::value == 0 && ParamCount<ScaledSquaredErrorForTest>::value == 2);

}  // namespace ms_bce

MS_BCE_EXPORT_LOSS(ms_bce::CpuEntry, ms_bce::SquaredErrorForTest, sq_test, 1, 1)
MS_BCE_EXPORT_LOSS(ms_bce::CpuEntry, ms_bce::ScaledSquaredErrorForTest, sqp_test, 1, 1)
