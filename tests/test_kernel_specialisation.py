"""How training kernels are specialised (``_kernels.train_epochs_kernel``): which kernel a network gets, and
that no two specialisations share a name in Numba's disk cache (which finds a kernel by its name and argument
types only, so a shared name would load one specialisation's code for another). Nothing here compiles: the
kernels' numbers are tested against the reference by test_engine, test_model and the estimator tests."""

from __future__ import annotations

import itertools

from fastmlp import _kernels as K

RELU, SIGMOID, SOFTMAX, LINEAR, TANH = K.ACT_RELU, K.ACT_SIGMOID, K.ACT_SOFTMAX, K.ACT_LINEAR, K.ACT_TANH


def _every_kernel():
    for opt, loss in itertools.product(K.OPTIMIZER_NAMES, K.LOSS_NAMES):
        for acts in (*K.SPECIALISED_ACTIVATIONS, K.ALL_ACTIVATIONS):
            yield (opt, loss, acts), K.train_epochs_kernel(opt, loss, acts)


def test_every_specialisation_has_its_own_cache_name():
    names = {}
    for key, kernel in _every_kernel():
        names.setdefault(kernel.py_func.__qualname__, set()).add(key)
    assert all(len(keys) == 1 for keys in names.values()), {n: k for n, k in names.items() if len(k) > 1}
    # the losses that differ only in _LOSS (mse and half_mse read the same flags) still get different kernels
    mse = K.train_epochs_kernel(K.OPT_SGD, K.LOSS_MSE, [RELU, LINEAR])
    half = K.train_epochs_kernel(K.OPT_SGD, K.LOSS_HALF_MSE, [RELU, LINEAR])
    assert mse.py_func.__qualname__ != half.py_func.__qualname__
    # and every copy of a layer kernel has one name per set of flags it reads
    seen = {}
    for (name, flags), copy in K._COPIES.items():
        assert seen.setdefault(copy.py_func.__qualname__, (name, flags)) == (name, flags)


def test_usual_networks_get_a_kernel_of_their_own_activations_and_others_share_one():
    sgd_bce = K.train_epochs_kernel(K.OPT_SGD, K.LOSS_BCE, [RELU, RELU, SIGMOID])
    assert sgd_bce is K.train_epochs_kernel(K.OPT_SGD, K.LOSS_BCE, (SIGMOID, RELU))  # only the set matters
    namespace = sgd_bce.py_func.__globals__
    assert namespace["_RELU"] and namespace["_SIGMOID"] and namespace["_SGD"] and namespace["_BCE"]
    assert not (namespace["_TANH"] or namespace["_SOFTMAX"] or namespace["_ADAM"] or namespace["_CE"])
    # the layer kernels it calls are copies with the same flags, down to the inlined helpers
    step = namespace["_batch_step"]
    layer = step.py_func.__globals__["_affine_activation"]
    activate = layer.py_func.__globals__["_activate_block"]
    assert not activate.py_func.__globals__["_TANH"] and activate.py_func.__globals__["_RELU"]
    update = step.py_func.__globals__["_layer_update"]
    assert update.py_func.__globals__["_optimizer_step"].py_func.__globals__["_ADAM"] is False
    # a network outside the specialised sets gets the kernel with every activation, shared with other such sets
    other = K.train_epochs_kernel(K.OPT_SGD, K.LOSS_BCE, [TANH, SIGMOID])
    assert other is K.train_epochs_kernel(K.OPT_SGD, K.LOSS_BCE, [K.ACT_LEAKY_RELU, RELU, SIGMOID])
    assert other is not sgd_bce
    assert all(other.py_func.__globals__[flag] for flag in K.ACTIVATION_FLAGS.values())
    assert not other.py_func.__globals__["_ADAM"]


def test_templates_compile_every_branch():
    """The module's own kernels (the per-step, predict and general paths call them) keep every flag True."""
    for flag in (*K.ACTIVATION_FLAGS.values(), *K.OPTIMIZER_FLAGS.values(), *K.LOSS_FLAGS.values(), "_SQUARED_LOSS"):
        assert getattr(K, flag) is True, flag


def test_copies_share_the_layer_kernels_that_read_the_same_flags():
    """Kernels that differ only in what a layer kernel does not read share that layer kernel's copy (compiled
    once in a process, and loaded from one cache file)."""
    sgd = K.train_epochs_kernel(K.OPT_SGD, K.LOSS_BCE, [RELU, SIGMOID])
    adam = K.train_epochs_kernel(K.OPT_ADAM, K.LOSS_BCE, [RELU, SIGMOID])
    layer = [k.py_func.__globals__["_batch_step"].py_func.__globals__["_affine_activation"] for k in (sgd, adam)]
    assert layer[0] is layer[1]
    update = [k.py_func.__globals__["_batch_step"].py_func.__globals__["_layer_update"] for k in (sgd, adam)]
    assert update[0] is not update[1]
