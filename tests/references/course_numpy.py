"""The deep-learning-course dialect (seeds 000/001) in plain NumPy, written for the tests and benchmarks.

Every function keeps the dialect's name, signature, return structure, seeding and edge cases, so that
``fastmlp.course`` can be held to it: ``relu_backward`` lets the gradient through at ``Z == 0`` unless
``grad_at_zero=0``; ``update_parameters`` returns a deep copy; the initialisers reseed NumPy's global
generator. ``L_layer_model`` is the course's whole training loop written with these functions.
"""

# ruff: noqa: NPY002 (the dialect seeds and draws from NumPy's global generator: that is what is transcribed)

import copy

import numpy as np


def sigmoid(Z):
    return 1.0 / (1.0 + np.exp(-Z)), Z


def relu(Z):
    return np.maximum(0, Z), Z


def sigmoid_backward(dA, cache):
    s = 1.0 / (1.0 + np.exp(-cache))
    return dA * s * (1 - s)


def relu_backward(dA, cache, grad_at_zero=1):
    dZ = np.array(dA, copy=True)
    if grad_at_zero:
        dZ[cache < 0] = 0
    else:
        dZ[cache <= 0] = 0
    return dZ


def initialize_parameters(n_x, n_h=None, n_y=None):
    dims = list(n_x) if n_h is None else [n_x, n_h, n_y]
    np.random.seed(1)
    params = {}
    for l in range(1, len(dims)):
        params[f"W{l}"] = np.random.randn(dims[l], dims[l - 1]) * 0.01
        params[f"b{l}"] = np.zeros((dims[l], 1))
    return params


def initialize_parameters_deep(layer_dims):
    np.random.seed(3)
    params = {}
    for l in range(1, len(layer_dims)):
        params[f"W{l}"] = np.random.randn(layer_dims[l], layer_dims[l - 1]) * 0.01
        params[f"b{l}"] = np.zeros((layer_dims[l], 1))
    return params


def linear_forward(A, W, b):
    return W @ A + b, (A, W, b)


def linear_activation_forward(A_prev, W, b, activation):
    Z, linear_cache = linear_forward(A_prev, W, b)
    A, activation_cache = (sigmoid if activation == "sigmoid" else relu)(Z)
    return A, (linear_cache, activation_cache)


def L_model_forward(X, parameters):
    L = len(parameters) // 2
    caches, A = [], X
    for l in range(1, L + 1):
        A, cache = linear_activation_forward(A, parameters[f"W{l}"], parameters[f"b{l}"],
                                             "sigmoid" if l == L else "relu")
        caches.append(cache)
    return A, caches


def compute_cost(AL, Y):
    m = Y.shape[1]
    return np.squeeze(-(1 / m) * np.sum(Y * np.log(AL) + (1 - Y) * np.log(1 - AL)))


def linear_backward(dZ, cache):
    A_prev, W, _ = cache
    m = A_prev.shape[1]
    return W.T @ dZ, (1 / m) * (dZ @ A_prev.T), (1 / m) * np.sum(dZ, axis=1, keepdims=True)


def linear_activation_backward(dA, cache, activation, grad_at_zero=1):
    linear_cache, Z = cache
    dZ = sigmoid_backward(dA, Z) if activation == "sigmoid" else relu_backward(dA, Z, grad_at_zero)
    return linear_backward(dZ, linear_cache)


def L_model_backward(AL, Y, caches, grad_at_zero=1):
    grads = {}
    L = len(caches)
    Y = Y.reshape(AL.shape)
    dA = -(Y / AL - (1 - Y) / (1 - AL))
    for l in range(L, 0, -1):
        dA, dW, db = linear_activation_backward(dA, caches[l - 1], "sigmoid" if l == L else "relu", grad_at_zero)
        grads[f"dA{l - 1}"], grads[f"dW{l}"], grads[f"db{l}"] = dA, dW, db
    return grads


def update_parameters(params, grads, learning_rate):
    out = copy.deepcopy(params)
    for l in range(1, len(out) // 2 + 1):
        out[f"W{l}"] = out[f"W{l}"] - learning_rate * grads[f"dW{l}"]
        out[f"b{l}"] = out[f"b{l}"] - learning_rate * grads[f"db{l}"]
    return out


def L_layer_model(X, Y, layers_dims, learning_rate=0.0075, num_iterations=3000, print_cost=False,
                  parameters=None, grad_at_zero=1):
    parameters = initialize_parameters_deep(layers_dims) if parameters is None else parameters
    costs = []
    for i in range(num_iterations):
        AL, caches = L_model_forward(X, parameters)
        cost = compute_cost(AL, Y)
        grads = L_model_backward(AL, Y, caches, grad_at_zero)
        parameters = update_parameters(parameters, grads, learning_rate)
        if i % 100 == 0:
            costs.append(cost)
    return parameters, costs
