"""Blocks students are built from, and name -> class tables."""

from evofusion.layers.blocks import ACTIVATIONS, POOLS, ConvBlock, ConvStage, make_activation

__all__ = ["ACTIVATIONS", "POOLS", "ConvBlock", "ConvStage", "make_activation"]
