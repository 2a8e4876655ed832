"""The list-of-dicts architecture dialect (seed 004 and the functions its notebook goes on to define) in plain
NumPy, written for the tests and benchmarks: ``relu_backward`` zeroes the gradient where ``Z <= 0``;
``update`` works in place; ``get_cost_value`` is the seed's per-sample ``(1/n) (Y_hat - Y)^2``.
"""

# ruff: noqa: NPY002 (the dialect seeds and draws from NumPy's global generator: that is what is transcribed)

import numpy as np


def init_layers(nn_architecture, seed=99):
    np.random.seed(seed)
    params = {}
    for l, layer in enumerate(nn_architecture, start=1):
        params[f"W{l}"] = np.random.randn(layer["output_dim"], layer["input_dim"]) * 0.1
        params[f"b{l}"] = np.random.randn(layer["output_dim"], 1) * 0.1
    return params


def sigmoid(Z):
    return 1 / (1 + np.exp(-Z))


def relu(Z):
    return np.maximum(0, Z)


def sigmoid_backward(dA, Z):
    s = sigmoid(Z)
    return dA * s * (1 - s)


def relu_backward(dA, Z, grad_at_zero=0):
    dZ = np.array(dA, copy=True)
    dZ[(Z < 0) if grad_at_zero else (Z <= 0)] = 0
    return dZ


def single_layer_forward_propagation(A_prev, W_curr, b_curr, activation="relu"):
    Z = W_curr @ A_prev + b_curr
    return {"relu": relu, "sigmoid": sigmoid}[activation](Z), Z


def full_forward_propagation(X, params_values, nn_architecture):
    memory, A = {}, X
    for l, layer in enumerate(nn_architecture, start=1):
        A_prev = A
        A, Z = single_layer_forward_propagation(A_prev, params_values[f"W{l}"], params_values[f"b{l}"],
                                                layer["activation"])
        memory[f"A{l - 1}"] = A_prev
        memory[f"Z{l}"] = Z
    return A, memory


def get_cost_value(Y_hat, Y):
    return np.squeeze((1 / Y_hat.shape[1]) * np.power(Y_hat - Y, 2))


def convert_prob_into_class(probs):
    classes = np.copy(probs)
    classes[classes > 0.5] = 1
    classes[classes <= 0.5] = 0
    return classes


def get_accuracy_value(Y_hat, Y):
    return (convert_prob_into_class(Y_hat) == Y).all(axis=0).mean()


def single_layer_backward_propagation(dA_curr, W_curr, b_curr, Z_curr, A_prev, activation="relu", grad_at_zero=0):
    m = A_prev.shape[1]
    dZ = sigmoid_backward(dA_curr, Z_curr) if activation == "sigmoid" else relu_backward(dA_curr, Z_curr, grad_at_zero)
    return W_curr.T @ dZ, (dZ @ A_prev.T) / m, np.sum(dZ, axis=1, keepdims=True) / m


def full_backward_propagation(Y_hat, Y, memory, params_values, nn_architecture, grad_at_zero=0):
    grads = {}
    Y = Y.reshape(Y_hat.shape)
    dA = -(Y / Y_hat - (1 - Y) / (1 - Y_hat))
    for l in range(len(nn_architecture), 0, -1):
        dA, dW, db = single_layer_backward_propagation(dA, params_values[f"W{l}"], params_values[f"b{l}"],
                                                       memory[f"Z{l}"], memory[f"A{l - 1}"],
                                                       nn_architecture[l - 1]["activation"], grad_at_zero)
        grads[f"dW{l}"] = dW
        grads[f"db{l}"] = db
    return grads


def update(params_values, grads_values, nn_architecture, learning_rate):
    for l in range(1, len(nn_architecture) + 1):
        params_values[f"W{l}"] -= learning_rate * grads_values[f"dW{l}"]
        params_values[f"b{l}"] -= learning_rate * grads_values[f"db{l}"]
    return params_values


def train(X, Y, nn_architecture, epochs, learning_rate, verbose=False, callback=None):
    params_values = init_layers(nn_architecture, 2)
    cost_history, accuracy_history = [], []
    for i in range(epochs):
        Y_hat, memory = full_forward_propagation(X, params_values, nn_architecture)
        cost_history.append(get_cost_value(Y_hat, Y))
        accuracy_history.append(get_accuracy_value(Y_hat, Y))
        grads = full_backward_propagation(Y_hat, Y, memory, params_values, nn_architecture)
        params_values = update(params_values, grads, nn_architecture, learning_rate)
        if i % 50 == 0 and callback is not None:
            callback(i, params_values)
    return params_values, cost_history, accuracy_history
